// Per-thread seccomp filters (libseccomp): each evmm thread allows only the system calls its role
// needs, so a guest that takes over a device or the exit handling still cannot open files, spawn
// programs, or talk to the network.
//
// A filter applies to the thread that installs it and to threads it creates later (the kernel
// stacks them: a thread made by a filtered one is bound by both). So the process's main thread, which
// creates every other thread, installs the widest filter (Role::Main), and each vCPU and event-loop
// thread adds its own narrower one as the first thing it runs, before any guest code.
//
// A forbidden call is trapped (SIGSYS): one line on stderr names the thread's role and the system
// call, and the process dies by SIGSYS (status 159 in a shell). clone3 alone returns ENOSYS instead,
// so glibc falls back to clone, whose flags a filter can check.
#pragma once

#include <string>
#include <vector>

#include "base/result.h"

namespace evmm::seccomp {

enum class Role {
  Main,    // the CLI's main thread: builds VMs (files, memory, KVM), starts threads, handles signals
  Vcpu,    // KVM_RUN and the exits it handles: device registers, interrupts, kicks, serial output
  Device,  // an event loop: eventfds, timerfds, serial input, interrupt lines
  Debugger,  // the gdb server (debug/gdb_server.h): its connection, made before any filter, and vCPU ioctls
  Backend,   // `evmm device`: a vhost-user backend's one thread, after it has accepted its frontend and
             // made its device: the device's calls, messages and fds on that connection, and mapping
             // the memory the frontend sends
  Api,       // the control API's thread (api/api_server.h): accepting on the socket main bound, reading
             // and answering requests, and the VMM calls a request makes (pausing vCPUs: kicks, futexes)
};

const char* to_string(Role role);

// Installs role's filter on the calling thread. EINVAL if the kernel refuses it.
Result<void> install(Role role);

// The system calls role allows (names as libseccomp knows them), for documentation and tests.
const std::vector<std::string>& allowed(Role role);

// Whether this build can enforce filters: not under ASan or TSan, whose runtimes make system calls
// of their own (LeakSanitizer ptraces the process at exit), so sanitizer builds run without them.
bool supported();

}  // namespace evmm::seccomp
