#include "vcpu/pause_gate.h"

namespace evmm {

bool PauseGate::park_if_closed() {
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
}

bool PauseGate::wait_parked(std::chrono::milliseconds timeout) {
  std::unique_lock lock(mu_);
  return cv_.wait_for(lock, timeout, [this] { return parked_ == members_; });
}

void PauseGate::open() {
  std::lock_guard lock(mu_);
  closed_ = false;
  cv_.notify_all();
}

bool PauseGate::closed() const {
  std::lock_guard lock(mu_);
  return closed_;
}

}  // namespace evmm
