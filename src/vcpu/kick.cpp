#include "vcpu/kick.h"

#include <signal.h>

#include <cerrno>

#include <mutex>

namespace evmm {

namespace {

// Initial-exec TLS is safe to touch from a signal handler (no lazy allocation).
__attribute__((tls_model("initial-exec"))) thread_local kvm_run* t_run = nullptr;
__attribute__((tls_model("initial-exec"))) thread_local std::atomic<uint64_t>* t_handled = nullptr;
static_assert(std::atomic<uint64_t>::is_always_lock_free, "the handler needs a lock-free counter");

void on_kick(int) {
  int saved = errno;
  if (kvm_run* run = t_run) __atomic_store_n(&run->immediate_exit, 1, __ATOMIC_RELAXED);
  // Released after immediate_exit: whoever sees the count also sees the flag set.
  if (auto* handled = t_handled) handled->fetch_add(1, std::memory_order_release);
  errno = saved;
}

}  // namespace

int kick_signal() { return SIGRTMIN; }

Result<int> install_kick_handler() {
  static std::once_flag once;
  static int err = 0;
  std::call_once(once, [] {
    struct sigaction sa {};
    sa.sa_handler = on_kick;
    sigemptyset(&sa.sa_mask);
    sa.sa_flags = 0;  // no SA_RESTART: KVM_RUN must come back with EINTR
    if (sigaction(kick_signal(), &sa, nullptr) < 0) err = errno;
  });
  if (err) return make_error(err, "sigaction for the vCPU kick signal");
  return kick_signal();
}

void set_thread_kvm_run(kvm_run* run, std::atomic<uint64_t>* handled) {
  // The signal must not see one pointer updated and not the other.
  sigset_t set, old;
  sigemptyset(&set);
  sigaddset(&set, kick_signal());
  pthread_sigmask(SIG_BLOCK, &set, &old);
  t_run = run;
  t_handled = handled;
  pthread_sigmask(SIG_SETMASK, &old, nullptr);
}

Result<void> kick_thread(pthread_t thread) {
  if (int e = pthread_kill(thread, kick_signal())) return make_error(e, "pthread_kill");
  return {};
}

namespace {
void mask_kick_signal(int how) {
  sigset_t set;
  sigemptyset(&set);
  sigaddset(&set, kick_signal());
  pthread_sigmask(how, &set, nullptr);
}
}  // namespace

void block_kick_signal() { mask_kick_signal(SIG_BLOCK); }
void unblock_kick_signal() { mask_kick_signal(SIG_UNBLOCK); }

}  // namespace evmm
