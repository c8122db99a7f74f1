// Exit requests (seed 000, DESIGN.md §1): any thread asks a vCPU to return to the VMM.
//
// The rules, and what keeps each of them:
// - A request made while the vCPU is outside KVM_RUN makes its next run return at once, with
//   exit::Request. before_run() arms the vCPU and finds the request pending, so KVM_RUN is not entered.
// - A request made while the vCPU is inside KVM_RUN (guest mode, or halted in the kernel) kicks the
//   thread with the kick signal (vcpu/kick.h), which sets immediate_exit; KVM_RUN returns EINTR and
//   the step reports exit::Request.
// - A request that lands while the vCPU is already exiting for another reason is folded into that
//   exit: the reason stays, the exit reports the request as consumed, and the kick it sent is waited
//   for and its immediate_exit cleared before the next entry, so the next run has no extra early exit.
// - None is lost or delivered twice: the requests live in one counter that the vCPU thread takes
//   with a single exchange, and every step reports how many it took (RunStep::requests).
//
// One word holds the pending count and an "armed" bit (set while the vCPU may be inside KVM_RUN).
// Only the request that finds the vCPU armed with nothing pending sends a signal, so a burst of
// requests costs one kick, and the vCPU knows exactly how many kicks are in flight: one per armed
// window that ended with requests taken. Real-time signals queue, so each kick runs the handler once.
#pragma once

#include "kvm/kvm_uapi.h"
#include <pthread.h>

#include <atomic>
#include <cstdint>

#include "base/result.h"
#include "vcpu/run_step.h"

namespace evmm {

class ExitRequests {
 public:
  ExitRequests() = default;
  ExitRequests(const ExitRequests&) = delete;
  ExitRequests& operator=(const ExitRequests&) = delete;
  ~ExitRequests();

  // Any thread: makes the vCPU exit; n requests are delivered (and counted) together.
  void request(uint64_t n = 1);
  // Requests made and not yet taken by the vCPU thread.
  uint64_t pending() const { return word_.load(std::memory_order_acquire) >> 1; }
  // Requests made in total, and kick signals sent for them.
  uint64_t requested() const { return requested_.load(std::memory_order_relaxed); }
  uint64_t kicks() const { return kicks_.load(std::memory_order_relaxed); }

  // The vCPU thread binds itself (installs the handler, unblocks the kick signal, points the
  // handler at run) before its first step, and unbinds after its last.
  Result<void> attach(kvm_run* run);
  void detach();

  // One run step: enter (KVM_RUN, or a fake of it in tests; () -> Result<VcpuExit> or
  // Result<StepExit>) unless requests are pending, and fold the requests taken into the exit.
  template <class Enter>
  Result<RunStep> step(Enter&& enter) {
    if (uint64_t n = before_run()) return RunStep{exit::Request{n}, n};
    auto e = enter();
    uint64_t n = after_run();
    if (!e) {
      // The run failed: keep the requests for whoever runs the vCPU next.
      restore(n);
      return tl::unexpected(std::move(e).error());
    }
    if (n && std::holds_alternative<exit::Interrupted>(*e)) return RunStep{exit::Request{n}, n};
    return RunStep{to_step_exit(std::move(*e)), n};
  }

 private:
  static constexpr uint64_t kArmed = 1, kOne = 2;

  // vCPU thread: waits out the kicks already sent, clears immediate_exit and arms; returns the
  // requests taken when some were pending (then the vCPU must not enter KVM_RUN).
  uint64_t before_run();
  // vCPU thread, after KVM_RUN returned: disarms and returns the requests taken.
  uint64_t after_run();
  void restore(uint64_t n);
  void settle_kicks();
  void kick();

  // Written by every requester: a cache line of its own.
  alignas(64) std::atomic<uint64_t> word_{0};  // pending << 1 | kArmed
  std::atomic<uint64_t> requested_{0};
  std::atomic<uint64_t> kicks_{0};
  // The vCPU thread's side. thread_ and run_ are written before the first arming and read by a
  // requester only after it saw the armed bit.
  alignas(64) pthread_t thread_{};
  kvm_run* run_ = nullptr;
  std::atomic<uint64_t> handled_{0};  // kicks whose handler has run (or that could not be sent)
  uint64_t expected_ = 0;             // kicks owed for the armed windows so far
};

}  // namespace evmm
