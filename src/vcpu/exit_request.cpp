#include "vcpu/exit_request.h"

#include <sched.h>

#include "base/log.h"
#include "vcpu/kick.h"

namespace evmm {

ExitRequests::~ExitRequests() {
  if (run_) detach();
}

void ExitRequests::request(uint64_t n) {
  if (n == 0) return;
  requested_.fetch_add(n, std::memory_order_relaxed);
  uint64_t old = word_.fetch_add(n * kOne, std::memory_order_seq_cst);
  // Only the first request of an armed window kicks; the vCPU counts on exactly one kick per
  // window that ends with requests pending.
  if ((old & kArmed) && (old >> 1) == 0) kick();
}

void ExitRequests::kick() {
  kicks_.fetch_add(1, std::memory_order_relaxed);
  if (auto r = kick_thread(thread_); !r) {
    // The vCPU will still take the request at its next exit; it must not wait for this kick.
    LOG_WARN("exit request: kick failed: {}", r.error().message());
    handled_.fetch_add(1, std::memory_order_release);
  }
}

Result<void> ExitRequests::attach(kvm_run* run) {
  TRY(install_kick_handler());
  thread_ = pthread_self();
  run_ = run;
  set_thread_kvm_run(run, &handled_);
  unblock_kick_signal();
  return {};
}

void ExitRequests::detach() {
  // Disarmed since the last after_run(); once the owed kicks have landed nobody signals this thread.
  settle_kicks();
  __atomic_store_n(&run_->immediate_exit, 0, __ATOMIC_RELAXED);
  set_thread_kvm_run(nullptr);
  run_ = nullptr;
}

void ExitRequests::settle_kicks() {
  // A requester may sit between its fetch_add and its pthread_kill; the wait is that short window.
  for (unsigned spins = 0; handled_.load(std::memory_order_acquire) != expected_; ++spins)
    if (spins > 64) sched_yield();
}

uint64_t ExitRequests::before_run() {
  settle_kicks();
  // Every kick owed has set immediate_exit by now; clearing it makes the next entry a real one.
  __atomic_store_n(&run_->immediate_exit, 0, __ATOMIC_RELAXED);
  uint64_t old = word_.fetch_or(kArmed, std::memory_order_seq_cst);
  if ((old >> 1) == 0) return 0;
  // Requests were pending when we armed, so no requester of this window kicks.
  return word_.exchange(0, std::memory_order_acq_rel) >> 1;
}

uint64_t ExitRequests::after_run() {
  uint64_t n = word_.exchange(0, std::memory_order_acq_rel) >> 1;
  if (n) ++expected_;  // the one kick of this window: landed, or on its way
  return n;
}

void ExitRequests::restore(uint64_t n) {
  // Disarmed: no kick; the next before_run() finds them.
  if (n) word_.fetch_add(n * kOne, std::memory_order_acq_rel);
}

}  // namespace evmm
