// One vCPU: its KVM fd, its thread's run loop, and the dispatch of the exits that reach userspace.
//
// run() is a state machine (DESIGN.md §5), one function per state, each doing one step and naming
// the next, as Firecracker's vstate/vcpu.rs does:
//   Running    one KVM_RUN and the exit it returned
//   Paused     parked at the VM's pause gate, or the debugger's, until it opens
//   Suspended  evmm's Suspended MP state: one wait for a wakeup event, then the VMM's decision
//   Stopping   the VM's stop flag is set or the vCPU cannot go on: run() returns why
// Between steps the next state comes from what other threads asked for, in this order: stop, pause,
// suspension. An exit request (vcpu/exit_request.h) is how they make a step end early.
#pragma once

#include <array>
#include <atomic>
#include <chrono>
#include <condition_variable>
#include <ctime>
#include <functional>
#include <memory>
#include <mutex>
#include <optional>
#include <string>

#include "bus/io_bus.h"
#include "event/interrupt_announcer.h"
#include "event/io_event_registry.h"
#include "kvm/vcpu_fd.h"
#include "memory/guest_memory.h"
#include "vcpu/assist.h"
#include "vcpu/exit_request.h"
#include "vcpu/exit_request_fd.h"
#include "vcpu/mp_state.h"
#include "vcpu/pause_gate.h"
#include "vcpu/run_step.h"

namespace evmm {

struct VcpuStats {
  std::atomic<uint64_t> runs{0};
  std::atomic<uint64_t> pio_exits{0};
  std::atomic<uint64_t> mmio_exits{0};
  std::atomic<uint64_t> interrupted{0};
  std::atomic<uint64_t> request_exits{0};     // steps that returned exit::Request
  std::atomic<uint64_t> requests_taken{0};    // exit requests consumed, by any exit
  std::atomic<uint64_t> suspend_sleeps{0};    // times a suspended vCPU's thread blocked waiting
  std::atomic<uint64_t> wakeups{0};           // exit::Wakeup steps
  std::atomic<uint64_t> wakeups_resumed{0};   // ... that the VMM answered with Resume
  std::atomic<uint64_t> msr_exits{0};         // filtered MSR accesses (exit::Msr)
  std::atomic<uint64_t> debug_exits{0};       // KVM_EXIT_DEBUG (exit::Debug)
  std::atomic<uint64_t> discarded_errors{0};  // failures with no caller to report to (base/discard.h)
  std::array<std::atomic<uint64_t>, static_cast<size_t>(AssistKind::Count)> assists{};
  // Exceptions injected because an assisted instruction faulted, by vector.
  std::array<std::atomic<uint64_t>, static_cast<size_t>(x86::Vector::Count)> faults{};
};

class Vcpu;

// What a vCPU is wired to: fixed when it is built, so that nothing changes under a running vCPU.
struct VcpuHooks {
  // Guest writes that reach userspace are offered to the registry first, with the kernel's
  // semantics (a match consumes the write); reads always go to the bus.
  const IoEventRegistry* io_events = nullptr;
  // Where the VM's interrupt paths announce interrupts: a suspended vCPU rechecks its LAPIC when
  // told (event/interrupt_announcer.h). Without it only wake() wakes a suspended vCPU.
  InterruptAnnouncer* announcer = nullptr;
  // The Paused state parks at this gate while the VM is paused; without one the vCPU never pauses.
  PauseGate* pause_gate = nullptr;
  // The VMM's answer to each Wakeup, on the vCPU thread; without one, Resume.
  std::function<WakeDecision(Vcpu&, const exit::Wakeup&)> wake;
  // Accesses to MSRs the VM filters (KVM_X86_SET_MSR_FILTER), on the vCPU thread: a write passes
  // its value, a read fills it; false gives the guest #GP. Without a hook every such access takes #GP.
  std::function<bool(Vcpu&, bool write, uint32_t index, uint64_t& value)> msr;
  // Hypercalls the kernel intercepted for the platform's emulation (KVM_EXIT_XEN); returns the
  // guest's result. Without a hook such an exit stops the vCPU with VmmError.
  std::function<uint64_t(Vcpu&, const exit::XenHypercall&)> hypercall;
  // A debugger's all-stop gate (debug/vcpu_debugger.h): parked at like pause_gate, but closed and
  // opened by the debugger alone, so that a debugger's stop and an API pause do not undo each other.
  PauseGate* debug_gate = nullptr;
  // KVM_EXIT_DEBUG, on the vCPU thread: the debugger records the stop and closes debug_gate. Such an
  // exit happens only after KVM_SET_GUEST_DEBUG; without a hook it stops the vCPU with VmmError.
  std::function<void(Vcpu&, const exit::Debug&)> debug;
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
  // TripleFault and GuestError: the vCPU's registers, segments, events and code bytes as it stopped
  // (vcpu/register_dump.h), so that a VMM developer sees where the guest was.
  std::string dump{};
};

class Vcpu {
 public:
  // exit_fds is the VM's exit fd watcher; without one, make_exit_fd() fails. stop is the VM's stop
  // flag: once set, the run loop goes to Stopping at its next step.
  Vcpu(unsigned id, VcpuFd fd, const GuestMemory& mem, IoBus& pio, IoBus& mmio, const std::atomic<bool>& stop,
       std::shared_ptr<ExitFdWatcher> exit_fds = nullptr, VcpuHooks hooks = {})
      : id_(id), fd_(std::move(fd)), mem_(mem), pio_(pio), mmio_(mmio), stop_(stop), exit_fds_(std::move(exit_fds)),
        hooks_(std::move(hooks)) {}

  unsigned id() const { return id_; }
  const VcpuFd& fd() const { return fd_; }
  const VcpuStats& stats() const { return stats_; }

  // Runs the state machine on the calling thread until the stop flag is set or the vCPU cannot go
  // on. An exit request ends the current step, after which the next state is chosen.
  VcpuStop run();

  // Makes the vCPU return to the VMM (see vcpu/exit_request.h for the rules); any thread.
  void request_exit() { requests_.request(); }
  // The vCPU's register dump (vcpu/register_dump.h), taken by its own thread between two steps
  // without stopping it: an exit request ends the KVM_RUN or suspended wait it is in. Any thread;
  // ETIMEDOUT when the thread does not get there in time (the VM is paused, or the vCPU not running).
  Result<std::string> dump_registers(std::chrono::milliseconds timeout);
  // An eventfd that makes this vCPU exit when written; one per waker. Needs the VM's watcher.
  Result<ExitFd> make_exit_fd();
  const ExitRequests& exit_requests() const { return requests_; }

  // ---- MP state (vcpu/mp_state.h, DESIGN.md §5) ----
  //
  // Suspended is evmm's own. A suspended vCPU runs no guest code: its run step blocks until a wakeup
  // event aimed at it and returns exit::Wakeup, or until a kick or exit request, which always ends
  // the wait as exit::Request (or exit::Interrupted), never as a Wakeup. Wakeup events: wake(); a
  // vector newly pending in its LAPIC IRR, raised through evmm's interrupt paths (InterruptLine,
  // irqfd, MSI; see InterruptAnnouncer); a pending NMI. The wait takes nothing from the LAPIC: if the VMM
  // resumes the vCPU, the interrupt that woke it is delivered as usual.
  //
  // run() hands each Wakeup to the wake hook (default: Resume). Resume makes the vCPU runnable;
  // StaySuspended keeps it suspended (sticky) and suppresses what woke it: those IRR vectors and that
  // NMI do not wake it again while they stay pending, and an API wake is consumed. Nothing in the
  // guest's state is masked to do so, so there is nothing to undo on resume beyond forgetting the
  // suppressed set. Callers of run_once() answer with settle_wakeup() themselves; a Wakeup left
  // unanswered comes back at once on the next step, as KVM_SYSTEM_EVENT_WAKEUP does.
  //
  // mp_state()/set_mp_state() for the KVM states use KVM_GET/SET_MP_STATE, which wait for the vCPU
  // to leave KVM_RUN: call them from the vCPU thread (a wake handler, a device) or while paused.
  // set_mp_state(Suspended) works from any thread: the vCPU gets an exit request and then waits.
  Result<MpState> mp_state() const;
  Result<void> set_mp_state(MpState s);
  bool suspended() const { return suspended_.load(std::memory_order_acquire); }
  // An explicit wakeup event (any thread); ignored unless the vCPU is suspended.
  void wake();
  using WakeHandler = decltype(VcpuHooks::wake);
  // Applies the VMM's answer to a Wakeup (vCPU thread).
  void settle_wakeup(const exit::Wakeup& w, WakeDecision d);

  // One interruptible sleep on the vCPU's own thread, for a device or hypercall that must wait
  // (a Xen SCHEDOP_block or poll). With the kick signal blocked it returns Kicked if an exit
  // request is pending, then Done if done() says so; otherwise it sleeps until fd is readable
  // (Readable; fd is not consumed), the timeout passes (TimedOut; nullptr: none), or a kick
  // arrives (Kicked). A request that ends the sleep stays pending: the run loop still sees it.
  enum class SleepEnd { Done, Readable, TimedOut, Kicked };
  Result<SleepEnd> sleep_once(int fd, const timespec* timeout, const std::function<Result<bool>()>& done);

  // For callers that drive the vCPU step by step (tests, benchmarks): bind the calling thread,
  // then run_once() from it, then unbind. run() does all three.
  Result<void> bind_thread();
  void unbind_thread();
  // One KVM_RUN, or none when exit requests are pending; reports the requests it consumed.
  Result<RunStep> run_once();

 private:
  enum class State { Running, Paused, Suspended, Stopping };
  // The state to go to between steps: stop, then pause, then suspension, else Running.
  State next_state() const;
  State running_step();
  State paused_step();
  State suspended_step();
  VcpuStop stopping();
  // A step's bookkeeping and its exit, then the next state (Stopping, with stop_reason_ set, on failure).
  State finish_step(Result<RunStep> step);
  // One run step with its counters; enter is KVM_RUN or the suspended wait.
  template <class Enter>
  Result<RunStep> counted_step(Enter&& enter);

  // One exit; returns false with *stop filled when the loop must end.
  bool handle_exit(const StepExit& exit, VcpuStop* stop);
  bool complete_emulation(std::span<const uint8_t> insn, VcpuStop* stop);
  bool inject_fault(const x86::Fault& f, std::string_view why, VcpuStop* stop);
  // The suspended run step: blocks until a wakeup event or a kick.
  Result<StepExit> wait_suspended();
  // Wakeup events present now (reasons 0: none).
  Result<exit::Wakeup> check_wakeup();

  unsigned id_;
  VcpuFd fd_;
  const GuestMemory& mem_;
  IoBus& pio_;
  IoBus& mmio_;
  const std::atomic<bool>& stop_;
  std::shared_ptr<ExitFdWatcher> exit_fds_;
  const VcpuHooks hooks_;
  // dump_registers(): one request at a time (dump_call_mu_); the vCPU thread answers through
  // dump_reply_ after a step that consumed an exit request, so other steps pay nothing.
  void serve_dump();
  // This vCPU's register dump, or a line saying why it could not be read (vCPU thread).
  std::string register_dump_text() const;
  std::mutex dump_call_mu_;
  std::mutex dump_mu_;
  std::condition_variable dump_cv_;
  std::atomic<bool> dump_wanted_{false};
  uint64_t dump_seq_ = 0;  // the request being answered; a late answer to an earlier one is dropped
  std::optional<std::string> dump_reply_;
  VcpuStop stop_reason_{VcpuStopKind::Requested, {}};  // vCPU thread: why run() ends
  VcpuStats stats_;
  ExitRequests requests_;

  std::atomic<bool> suspended_{false};
  std::atomic<bool> api_wake_{false};
  // wake() and the InterruptAnnouncer signal it; empty only if eventfd() failed, and then the vCPU cannot
  // be suspended.
  std::optional<EventFd> wake_fd_ = [] { auto fd = EventFd::create(); return fd ? std::optional<EventFd>(std::move(*fd)) : std::nullopt; }();
  // vCPU thread only: what a StaySuspended answer suppressed.
  std::array<uint32_t, 8> suppressed_vectors_{};
  bool suppressed_nmi_ = false;
};

}  // namespace evmm
