// Time as devices see it, injected so that tests can run on a fake clock.
#pragma once

#include <time.h>

#include <cstdint>

namespace evmm {

class Clock {
 public:
  virtual ~Clock() = default;
  // CLOCK_MONOTONIC in nanoseconds: for timers and counters that must never jump.
  virtual int64_t monotonic_ns() const = 0;
  // CLOCK_REALTIME in nanoseconds since the Unix epoch (UTC): for the RTC's wall time.
  virtual int64_t realtime_ns() const = 0;
};

// The host's clocks. Stateless; one instance can serve every device.
class SystemClock final : public Clock {
 public:
  int64_t monotonic_ns() const override { return now(CLOCK_MONOTONIC); }
  int64_t realtime_ns() const override { return now(CLOCK_REALTIME); }

 private:
  static int64_t now(clockid_t id) {
    timespec ts{};
    ::clock_gettime(id, &ts);  // cannot fail for these clock ids
    return int64_t{ts.tv_sec} * 1'000'000'000 + ts.tv_nsec;
  }
};

constexpr int64_t kNsPerSec = 1'000'000'000;

}  // namespace evmm
