// What every fuzz target shares: a reader that takes the input apart field by field, and the check
// that turns a broken invariant into a crash libFuzzer (or the replay test) reports.
#pragma once

#include <algorithm>
#include <cstdint>
#include <cstdio>
#include <span>

#include "base/log.h"

// Traps with the failed condition on stderr; used for invariants the code under test documents.
#define FUZZ_CHECK(cond)                                                                     \
  do {                                                                                       \
    if (!(cond)) {                                                                           \
      std::fprintf(stderr, "%s:%d: fuzz invariant broken: %s\n", __FILE__, __LINE__, #cond); \
      __builtin_trap();                                                                      \
    }                                                                                        \
  } while (0)

// Errors the code under test reports for bad input are expected; their log lines only slow the
// fuzzer down. Every target calls this from LLVMFuzzerInitialize.
inline void fuzz_quiet_logs() { evmm::set_log_level(evmm::LogLevel::Error); }

namespace evmm::fuzz {

// Reads the input front to back. Past its end every read returns zeros or an empty span, so a
// target never has to check lengths; done() tells it when to stop.
class Input {
 public:
  Input(const uint8_t* data, size_t size) : bytes_(data, size) {}

  bool done() const { return pos_ >= bytes_.size(); }
  uint8_t u8() { return done() ? 0 : bytes_[pos_++]; }
  // n <= 8 bytes, little-endian.
  uint64_t le(unsigned n) {
    uint64_t v = 0;
    for (unsigned i = 0; i < n; ++i) v |= uint64_t{u8()} << (8 * i);
    return v;
  }
  // Up to n bytes, fewer at the end of the input.
  std::span<const uint8_t> bytes(size_t n) {
    size_t k = std::min(n, bytes_.size() - std::min(pos_, bytes_.size()));
    auto out = bytes_.subspan(std::min(pos_, bytes_.size()), k);
    pos_ += k;
    return out;
  }
  std::span<const uint8_t> rest() { return bytes(bytes_.size()); }

 private:
  std::span<const uint8_t> bytes_;
  size_t pos_ = 0;
};

}  // namespace evmm::fuzz
