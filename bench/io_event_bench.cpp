// Userspace ioeventfd dispatch against the number of registrations: it should grow as log n.
// Miss: a write at a registered address whose value does not match (lookup and compare only).
// Hit: a matching write, which adds the eventfd write(2).
#include <benchmark/benchmark.h>

#include <cstdint>
#include <memory>
#include <random>
#include <vector>

#include "event/io_event_registry.h"

namespace {

using evmm::IoEventRegistration;
using evmm::IoEventRegistry;
using evmm::IoMatch;
using evmm::IoSpace;

struct Table {
  explicit Table(int64_t n) : reg(nullptr), efd(std::make_shared<const evmm::EventFd>(std::move(*evmm::EventFd::create()))) {
    for (int64_t i = 0; i < n; ++i)
      live.push_back(std::move(*reg.add(IoSpace::Mmio, 0xd0000000 + 16 * i, 4, IoMatch::value(1), efd)));
    std::mt19937_64 rng(1);
    for (auto& a : addrs) a = 0xd0000000 + 16 * (rng() % n);  // random groups defeat the branch predictor
  }
  IoEventRegistry reg;
  std::shared_ptr<const evmm::EventFd> efd;
  std::vector<IoEventRegistration> live;
  uint64_t addrs[1024];
};

void BM_DispatchMiss(benchmark::State& state) {
  Table t(state.range(0));
  const uint32_t value = 2;
  size_t i = 0;
  for (auto _ : state) {
    bool hit = t.reg.dispatch_write(IoSpace::Mmio, t.addrs[i++ & 1023],
                                    {reinterpret_cast<const uint8_t*>(&value), sizeof value});
    benchmark::DoNotOptimize(hit);
  }
}

void BM_DispatchHit(benchmark::State& state) {
  Table t(state.range(0));
  const uint32_t value = 1;
  size_t i = 0;
  for (auto _ : state) {
    bool hit = t.reg.dispatch_write(IoSpace::Mmio, t.addrs[i++ & 1023],
                                    {reinterpret_cast<const uint8_t*>(&value), sizeof value});
    benchmark::DoNotOptimize(hit);
    if ((i & 0xffff) == 0) (void)t.efd->consume();
  }
}

BENCHMARK(BM_DispatchMiss)->Arg(10)->Arg(100)->Arg(1000)->Arg(10000);
BENCHMARK(BM_DispatchHit)->Arg(10)->Arg(100)->Arg(1000)->Arg(10000);

}  // namespace

BENCHMARK_MAIN();
