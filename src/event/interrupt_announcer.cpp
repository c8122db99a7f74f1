#include "event/interrupt_announcer.h"

#include <algorithm>

namespace evmm {

void InterruptAnnouncer::notify() {
  // Pairs with add_waiter(): a waiter that registered before the interrupt was raised is seen here;
  // one that registers later finds the interrupt when it checks its LAPIC after registering. The
  // full barrier is a seq_cst read-modify-write rather than a fence, which TSan cannot model.
  if (waiters_.fetch_add(0, std::memory_order_seq_cst) == 0) return;
  notifications_.fetch_add(1, std::memory_order_relaxed);
  std::lock_guard lock(mu_);
  for (const EventFd* fd : fds_) (void)fd->signal();
}

void InterruptAnnouncer::add_waiter(const EventFd* fd) {
  {
    std::lock_guard lock(mu_);
    fds_.push_back(fd);
  }
  waiters_.fetch_add(1, std::memory_order_seq_cst);  // a full barrier before the LAPIC check
}

void InterruptAnnouncer::remove_waiter(const EventFd* fd) {
  std::lock_guard lock(mu_);
  auto it = std::find(fds_.begin(), fds_.end(), fd);
  if (it == fds_.end()) return;
  fds_.erase(it);
  waiters_.fetch_sub(1, std::memory_order_relaxed);
}

}  // namespace evmm
