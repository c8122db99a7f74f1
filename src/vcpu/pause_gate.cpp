#include "vcpu/pause_gate.h"

namespace evmm {

bool PauseGate::park_if_closed() {
  if (!closed()) return false;
  std::unique_lock lock(mu_);
  if (!closed_) return false;
  ++parked_;
  cv_.notify_all();
  cv_.wait(lock, [this] { return !closed_; });
  --parked_;
  return true;
}

void PauseGate::leave() {
  std::lock_guard lock(mu_);
  --members_;
  cv_.notify_all();
}

void PauseGate::close() {
  std::lock_guard lock(mu_);
  closed_ = true;
  closed_flag_.store(true, std::memory_order_release);
}

bool PauseGate::wait_parked(std::chrono::milliseconds timeout) {
  std::unique_lock lock(mu_);
  return cv_.wait_for(lock, timeout, [this] { return parked_ == members_; });
}

void PauseGate::open() {
  std::lock_guard lock(mu_);
  closed_ = false;
  closed_flag_.store(false, std::memory_order_release);
  cv_.notify_all();
}

}  // namespace evmm
