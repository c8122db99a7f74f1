// Pausing a VM's vCPU threads (DESIGN.md §5): the VMM closes the gate and asks every vCPU to exit;
// each vCPU thread parks at the gate between run steps, out of guest mode and quiescent, until the
// gate opens again.
#pragma once

#include <atomic>
#include <chrono>
#include <condition_variable>
#include <mutex>

namespace evmm {

class PauseGate {
 public:
  explicit PauseGate(unsigned members) : members_(members) {}

  // vCPU thread, between run steps: returns at once while the gate is open; otherwise parks until
  // open(). Returns true when it parked.
  bool park_if_closed();
  // A vCPU thread whose run loop ended leaves for good, so no pause waits for it.
  void leave();

  // VMM side. close() makes the next park_if_closed() of each member park; the caller then makes
  // every vCPU exit (exit requests) and waits. wait_parked() is false on timeout.
  void close();
  bool wait_parked(std::chrono::milliseconds timeout);
  void open();
  // Lock-free, so that a vCPU can look at the gate after every exit for nothing.
  bool closed() const { return closed_flag_.load(std::memory_order_acquire); }

 private:
  mutable std::mutex mu_;
  std::condition_variable cv_;
  unsigned members_;
  unsigned parked_ = 0;
  bool closed_ = false;
  // closed_ for readers outside mu_; written with it. A vCPU sees it set once it takes the exit
  // request that close()'s caller makes after closing.
  std::atomic<bool> closed_flag_{false};
};

}  // namespace evmm
