// Fakes shared by the device unit tests: an interrupt line, a VM control and a clock that record
// or replay exactly what a test sets.
#pragma once

#include <atomic>
#include <mutex>
#include <utility>
#include <vector>

#include "bus/io_bus.h"
#include "devices/clock.h"
#include "devices/vm_stop_handler.h"
#include "event/interrupt_line.h"

namespace evmm::testing {

class FakeInterruptLine : public InterruptLine {
 public:
  void trigger() override {
    std::lock_guard lock(mu_);
    ++triggers_;
  }
  void set_level(bool asserted) override {
    std::lock_guard lock(mu_);
    levels_.push_back(asserted);
  }
  // The current level: the last set_level, false before any.
  bool level() const {
    std::lock_guard lock(mu_);
    return !levels_.empty() && levels_.back();
  }
  std::vector<bool> levels() const {
    std::lock_guard lock(mu_);
    return levels_;
  }
  int triggers() const {
    std::lock_guard lock(mu_);
    return triggers_;
  }
  void clear() {
    std::lock_guard lock(mu_);
    levels_.clear();
    triggers_ = 0;
  }

 private:
  mutable std::mutex mu_;
  std::vector<bool> levels_;
  int triggers_ = 0;
};

class FakeVmStopHandler : public VmStopHandler {
 public:
  void request_stop(StopReason reason, int exit_status) override {
    std::lock_guard lock(mu_);
    stops_.emplace_back(reason, exit_status);
  }
  std::vector<std::pair<StopReason, int>> stops() const {
    std::lock_guard lock(mu_);
    return stops_;
  }

 private:
  mutable std::mutex mu_;
  std::vector<std::pair<StopReason, int>> stops_;
};

class FakeClock : public Clock {
 public:
  int64_t monotonic_ns() const override { return mono_.load(); }
  int64_t realtime_ns() const override { return real_.load(); }
  void set_monotonic(int64_t ns) { mono_ = ns; }
  void set_realtime(int64_t ns) { real_ = ns; }
  // Moves both clocks forward together, as time does.
  void advance(int64_t ns) {
    mono_ += ns;
    real_ += ns;
  }

 private:
  std::atomic<int64_t> mono_{1'000'000'000};
  std::atomic<int64_t> real_{0};
};

// A CMOS/RTC register as a guest reaches it: the index at offset 0, then the data at offset 1.
inline uint8_t cmos_get(BusDevice& rtc, uint8_t index) {
  rtc.write({0, std::span<const uint8_t>(&index, 1), 0});
  uint8_t v = 0;
  rtc.read({1, std::span(&v, 1), 0});
  return v;
}
inline void cmos_set(BusDevice& rtc, uint8_t index, uint8_t value) {
  rtc.write({0, std::span<const uint8_t>(&index, 1), 0});
  rtc.write({1, std::span<const uint8_t>(&value, 1), 0});
}

}  // namespace evmm::testing
