// The host half of the testprog guest's `pvsuspend` word (guests/README.md), shared by
// tests/suspend_test.cpp and bench/suspend_bench.cpp. The caller is the VMM, as an embedder would be: it
// builds a Vm from libevmm with COM1 written to a file and an irqfd on the guest's wake pin, and on
// request a pipe into COM1 and an ioeventfd on the port the guest acknowledges each resume on (`ack=`).
#pragma once

#include <unistd.h>

#include <chrono>
#include <functional>
#include <memory>
#include <optional>
#include <string>
#include <thread>

#include "base/eventfd.h"
#include "base/fd.h"
#include "event/eventfd_interrupt_line.h"
#include "event/io_event_registry.h"
#include "testing/test_vm.h"
#include "vmm/vm.h"

namespace evmm::suspend {

constexpr uint32_t kWakeGsi = 11;  // pvsuspend's default pin

struct Options {
  std::string cmdline;
  unsigned cpus = 1;
  bool serial_input = false;  // a pipe into COM1: what Guest::serial_in is given, the guest receives
  // The guest's ack=PORT, caught by an ioeventfd that must be in KVM: a userspace exit would count in
  // the time from the wakeup event to the ack.
  std::optional<uint16_t> ack_port{};
  Vcpu::WakeHandler wake_handler{};  // none: every wakeup resumes the vCPU
};

// One VM. Members are destroyed in reverse order, so each is declared after what it needs: the ack
// registration and the irqfd go before the Vm, the Vm before the pipe it reads.
struct Guest {
  UniqueFd com1_in, serial_in;  // the pipe's read end (COM1's) and write end (the caller's)
  testing::TestVm vm;
  std::shared_ptr<EventFdInterruptLine> line;  // GSI kWakeGsi, as a device would raise it
  std::shared_ptr<const EventFd> ack;          // one count per ack= write
  std::optional<IoEventRegistration> ack_reg;

  Guest() = default;
  Guest(const Guest&) = delete;
  Guest& operator=(const Guest&) = delete;

  // Empty once the vCPUs run, else what failed.
  std::string boot(const std::string& image, const Options& o) {
    if (o.serial_input) {
      int fds[2];
      if (::pipe(fds) != 0) return "pipe failed";
      com1_in.reset(fds[0]);
      serial_in.reset(fds[1]);
    }
    if (auto e = vm.create({image, o.cmdline, o.cpus, com1_in.get(), false, "evmm-suspend"}); !e.empty()) return e;
    auto l = EventFdInterruptLine::create(vm->vm_fd(), kWakeGsi, EventFdInterruptLine::Mode::Edge);
    if (!l) return l.error().message();
    line = *l;
    if (o.ack_port) {
      auto a = EventFd::create();
      if (!a) return a.error().message();
      ack = std::make_shared<const EventFd>(std::move(*a));
      size_t in_kernel = vm->io_events().stats().in_kernel;
      auto r = vm->io_events().add(IoSpace::Pio, *o.ack_port, 4, IoMatch::any(), ack);
      if (!r) return r.error().message();
      ack_reg.emplace(std::move(*r));
      if (vm->io_events().stats().in_kernel == in_kernel) return "the ack doorbell is not in KVM";
    }
    if (o.wake_handler) vm->set_wake_handler(o.wake_handler);
    if (auto s = vm->start(); !s) return s.error().message();
    return {};
  }

  // The device's interrupt, announced to suspended vCPUs as the platform's lines do.
  void raise() {
    line->trigger();
    vm->interrupt_announcer().notify();
  }

  // Waits for the VM to end; returns what the guest wrote to COM1.
  std::string finish(VmOutcome* out = nullptr) {
    return vm.finish(out);
  }
};

inline bool wait_for(const std::function<bool()>& cond, std::chrono::milliseconds limit = std::chrono::seconds(20),
                     std::chrono::microseconds poll = std::chrono::milliseconds(2)) {
  for (auto end = std::chrono::steady_clock::now() + limit; std::chrono::steady_clock::now() < end;) {
    if (cond()) return true;
    std::this_thread::sleep_for(poll);
  }
  return cond();
}

}  // namespace evmm::suspend
