// One vCPU: its KVM fd, its thread's run loop, and the dispatch of the exits that reach userspace.
#pragma once

#include <array>
#include <atomic>
#include <memory>
#include <string>

#include "bus/io_bus.h"
#include "event/io_event_registry.h"
#include "kvm/vcpu_fd.h"
#include "memory/guest_memory.h"
#include "vcpu/assist.h"
#include "vcpu/exit_request.h"
#include "vcpu/exit_request_fd.h"

namespace evmm {

struct VcpuStats {
  std::atomic<uint64_t> runs{0};
  std::atomic<uint64_t> pio_exits{0};
  std::atomic<uint64_t> mmio_exits{0};
  std::atomic<uint64_t> interrupted{0};
  std::atomic<uint64_t> request_exits{0};     // steps that returned exit::Request
  std::atomic<uint64_t> requests_taken{0};    // exit requests consumed, by any exit
  std::array<std::atomic<uint64_t>, static_cast<size_t>(AssistKind::Count)> assists{};
};

// Why a run loop ended.
enum class VcpuStopKind {
  Requested,    // the VM asked every vCPU to stop (a device, the API, another vCPU)
  TripleFault,  // KVM_EXIT_SHUTDOWN
  GuestError,   // an instruction evmm cannot complete, a failed entry, a KVM internal error
  VmmError,     // a KVM ioctl failed
};

struct VcpuStop {
  VcpuStopKind kind;
  std::string message;  // one line, empty for Requested
};

class Vcpu {
 public:
  // exit_fds is the VM's exit fd watcher; without one, make_exit_fd() fails.
  Vcpu(unsigned id, VcpuFd fd, const GuestMemory& mem, IoBus& pio, IoBus& mmio, const std::atomic<bool>& stop,
       std::shared_ptr<ExitFdWatcher> exit_fds = nullptr)
      : id_(id), fd_(std::move(fd)), mem_(mem), pio_(pio), mmio_(mmio), stop_(stop), exit_fds_(std::move(exit_fds)) {}

  // Guest writes that reach userspace are offered to the registry first, with the kernel's
  // semantics (a match consumes the write); reads always go to the bus. Call before the vCPU runs.
  void attach_io_events(const IoEventRegistry& registry) { ioevents_ = &registry; }

  unsigned id() const { return id_; }
  const VcpuFd& fd() const { return fd_; }
  const VcpuStats& stats() const { return stats_; }

  // Runs the vCPU on the calling thread until the stop flag is set or the vCPU cannot go on. An
  // exit request returns control here, where the stop flag is checked.
  VcpuStop run();

  // Makes the vCPU return to the VMM (see vcpu/exit_request.h for the rules); any thread.
  void request_exit() { requests_.request(); }
  // An eventfd that makes this vCPU exit when written; one per waker. Needs the VM's watcher.
  Result<ExitFd> make_exit_fd();
  const ExitRequests& exit_requests() const { return requests_; }

  // For callers that drive the vCPU step by step (tests, benchmarks): bind the calling thread,
  // then run_once() from it, then unbind. run() does all three.
  Result<void> bind_thread() { return requests_.attach(fd_.run_struct()); }
  void unbind_thread() { requests_.detach(); }
  // One KVM_RUN, or none when exit requests are pending; reports the requests it consumed.
  Result<RunStep> run_once();

 private:
  // One exit; returns false with *stop filled when the loop must end.
  bool handle_exit(const VcpuExit& exit, VcpuStop* stop);
  bool complete_emulation(std::span<const uint8_t> insn, VcpuStop* stop);

  unsigned id_;
  VcpuFd fd_;
  const GuestMemory& mem_;
  IoBus& pio_;
  IoBus& mmio_;
  const IoEventRegistry* ioevents_ = nullptr;
  const std::atomic<bool>& stop_;
  std::shared_ptr<ExitFdWatcher> exit_fds_;
  VcpuStats stats_;
  ExitRequests requests_;
};

}  // namespace evmm
