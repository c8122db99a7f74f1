// A token bucket (Firecracker's rate limiter, bytes only): `rate` tokens a second accrue up to
// `burst`; a device takes what it may use now and, when the bucket is empty, learns how long to wait.
// Time is passed in, so the arithmetic is testable without sleeping.
#pragma once

#include <algorithm>
#include <cstdint>

namespace evmm::virtio {

class TokenBucket {
 public:
  // rate 0 means unlimited.
  TokenBucket(uint64_t rate_per_s, uint64_t burst, uint64_t now_ns)
      : rate_(rate_per_s), burst_(std::max<uint64_t>(burst, 1)), tokens_(burst_), last_ns_(now_ns) {}

  bool unlimited() const { return rate_ == 0; }
  // Takes up to want tokens; returns how many were granted (0 when the bucket is empty).
  uint64_t take(uint64_t want, uint64_t now_ns) {
    if (unlimited()) return want;
    refill(now_ns);
    uint64_t n = std::min(want, tokens_);
    tokens_ -= n;
    return n;
  }
  // Nanoseconds until at least one token is there (0 if one is now).
  uint64_t wait_ns(uint64_t now_ns) {
    if (unlimited()) return 0;
    refill(now_ns);
    if (tokens_ > 0) return 0;
    return (1'000'000'000ull + rate_ - 1) / rate_;
  }

 private:
  void refill(uint64_t now_ns) {
    if (now_ns <= last_ns_) return;
    // Whole tokens only; the remainder of the interval carries over through last_ns_.
    uint64_t elapsed = now_ns - last_ns_;
    uint64_t add = static_cast<uint64_t>((static_cast<unsigned __int128>(elapsed) * rate_) / 1'000'000'000ull);
    if (add == 0) return;
    tokens_ = std::min(burst_, tokens_ + add);
    last_ns_ = tokens_ == burst_ ? now_ns : last_ns_ + static_cast<uint64_t>((static_cast<unsigned __int128>(add) * 1'000'000'000ull) / rate_);
  }

  uint64_t rate_;
  uint64_t burst_;
  uint64_t tokens_;
  uint64_t last_ns_;
};

}  // namespace evmm::virtio
