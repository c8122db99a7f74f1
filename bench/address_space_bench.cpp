// AddressSpace (memory/address_space.h) side by side in one run:
//   - a 4-byte read through the thread's cache (the same region again) against one that misses it
//     (alternating between two of 64 regions, so each access searches the snapshot), and against a
//     bare memcpy of 4 bytes from the same memory;
//   - 64 KiB copies out of guest memory that cross a region boundary, against memcpy of the same
//     bytes (the goal: at least 0.9x memcpy's throughput).
#include <sys/mman.h>
#include <unistd.h>

#include <benchmark/benchmark.h>

#include <cstring>
#include <vector>

#include "memory/address_space.h"

using namespace evmm;

namespace {

constexpr uint64_t kRegion = 1 << 20;
constexpr int kRegions = 64;

struct Space {
  Space() : as(AddressSpace::create().value()) {
    fd = UniqueFd(::memfd_create("as-bench", MFD_CLOEXEC));
    if (::ftruncate(fd.get(), off_t(kRegion * kRegions)) != 0) std::abort();
    // Regions 2 MiB apart in guest space, so none is adjacent to the next.
    for (int i = 0; i < kRegions; ++i)
      if (!as->add_region(GuestAddress(uint64_t(i) * 2 * kRegion), kRegion, fd.get(), uint64_t(i) * kRegion)) std::abort();
    // Two regions adjacent for the crossing copies.
    if (!as->add_region(GuestAddress(1ull << 40), kRegion, fd.get(), 0)) std::abort();
    if (!as->add_region(GuestAddress((1ull << 40) + kRegion), kRegion, fd.get(), kRegion)) std::abort();
    host = static_cast<uint8_t*>(::mmap(nullptr, 2 * kRegion, PROT_READ | PROT_WRITE, MAP_SHARED, fd.get(), 0));
  }
  UniqueFd fd;
  std::unique_ptr<AddressSpace> as;
  uint8_t* host;
};
Space& space() {
  static Space s;
  return s;
}

void BM_ReadCached(benchmark::State& st) {
  auto& s = space();
  uint64_t off = 0;
  for (auto _ : st) {
    auto v = s.as->read_obj<uint32_t>(GuestAddress(off & (kRegion - 4)));
    benchmark::DoNotOptimize(v);
    off += 64;
  }
}
BENCHMARK(BM_ReadCached);

void BM_ReadUncached(benchmark::State& st) {
  auto& s = space();
  uint64_t i = 0;
  for (auto _ : st) {
    // Regions 5 and 40 in turn: the cache holds the other one every time.
    const uint64_t region = (i & 1) ? 5 : 40;
    auto v = s.as->read_obj<uint32_t>(GuestAddress(region * 2 * kRegion + ((i * 64) & (kRegion - 4))));
    benchmark::DoNotOptimize(v);
    ++i;
  }
}
BENCHMARK(BM_ReadUncached);

void BM_ReadMemcpyBaseline(benchmark::State& st) {
  auto& s = space();
  uint64_t off = 0;
  for (auto _ : st) {
    uint32_t v;
    std::memcpy(&v, s.host + (off & (kRegion - 4)), 4);
    benchmark::DoNotOptimize(v);
    off += 64;
  }
}
BENCHMARK(BM_ReadMemcpyBaseline);

constexpr uint64_t kCopy = 64 * 1024;

void BM_Copy64KiBAcrossRegions(benchmark::State& st) {
  auto& s = space();
  std::vector<uint8_t> buf(kCopy);
  for (auto _ : st) {
    auto r = s.as->read(GuestAddress((1ull << 40) + kRegion - kCopy / 2), buf);
    benchmark::DoNotOptimize(r);
    benchmark::ClobberMemory();
  }
  st.SetBytesProcessed(int64_t(st.iterations() * kCopy));
}
BENCHMARK(BM_Copy64KiBAcrossRegions);

void BM_Copy64KiBMemcpyBaseline(benchmark::State& st) {
  auto& s = space();
  std::vector<uint8_t> buf(kCopy);
  for (auto _ : st) {
    std::memcpy(buf.data(), s.host + kRegion - kCopy / 2, kCopy);
    benchmark::ClobberMemory();
  }
  st.SetBytesProcessed(int64_t(st.iterations() * kCopy));
}
BENCHMARK(BM_Copy64KiBMemcpyBaseline);

}  // namespace

BENCHMARK_MAIN();
