// Percentiles of a benchmark's samples, in the unit the caller divides by.
#pragma once

#include <algorithm>
#include <cstdint>
#include <vector>

namespace evmm::bench {

struct Stats {
  double p50 = 0, p99 = 0;
};

// Nearest-rank percentiles of samples (nanoseconds), scaled by 1/div (1000: microseconds).
inline Stats percentiles(std::vector<uint64_t> v, double div = 1000.0) {
  if (v.empty()) return {};
  std::sort(v.begin(), v.end());
  auto at = [&](double q) { return double(v[std::min(v.size() - 1, size_t(q * double(v.size())))]) / div; };
  return {at(0.50), at(0.99)};
}

}  // namespace evmm::bench
