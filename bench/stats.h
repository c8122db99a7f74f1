// What the benchmarks share: percentiles of their samples, and pinning a thread to a CPU.
#pragma once

#include <pthread.h>
#include <sched.h>

#include <algorithm>
#include <cstdint>
#include <thread>
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

// Pins the calling thread to one CPU (modulo the CPUs there are): on a 2-core host, whether a vCPU
// thread shares the requester's core swings the latency by half again, so compared methods get the
// same placement.
inline void pin_to(int cpu) {
  cpu_set_t set;
  CPU_ZERO(&set);
  CPU_SET(cpu % std::max(1, static_cast<int>(std::thread::hardware_concurrency())), &set);
  pthread_setaffinity_np(pthread_self(), sizeof set, &set);
}

}  // namespace evmm::bench
