// virtio-blk's engines side by side: 4 KiB random reads, 32 in flight, from a 64 MiB image in the
// page cache, through io_uring and through the thread pool (submit, wait on the event fd, reap, as
// the device loop does), against plain pread on the same file from the calling thread.
#include <fcntl.h>
#include <poll.h>
#include <unistd.h>

#include <benchmark/benchmark.h>

#include <cstdlib>
#include <random>
#include <string>
#include <vector>

#include "devices/virtio/blk/engine.h"

using namespace evmm::virtio;

namespace {

constexpr uint64_t kImage = 64 << 20, kBlock = 4096;
constexpr unsigned kDepth = 32;

struct Image {
  Image() {
    char p[] = "/tmp/evmm-blk-bench-XXXXXX";
    fd = ::mkstemp(p);
    ::unlink(p);
    std::vector<uint8_t> chunk(1 << 20, 0x5a);
    for (uint64_t off = 0; off < kImage; off += chunk.size()) (void)!::pwrite(fd, chunk.data(), chunk.size(), off_t(off));
  }
  ~Image() { ::close(fd); }
  int fd;
};

Image& image() {
  static Image img;
  return img;
}

void engine_reads(benchmark::State& state, BlkEngineKind kind) {
  auto e = IoEngine::create(kind, image().fd, {});
  if (!e) return state.SkipWithError(e.error().message().c_str());
  std::vector<uint8_t> buf(kDepth * kBlock);
  std::mt19937_64 rng(1);
  std::vector<IoCompletion> done;
  for (auto _ : state) {
    for (unsigned i = 0; i < kDepth; ++i) {
      uint64_t off = (rng() % (kImage / kBlock)) * kBlock;
      (*e)->submit(IoOp{IoOp::Kind::Read, off, kBlock, std::vector<iovec>{iovec{buf.data() + i * kBlock, kBlock}}, false, i});
    }
    (*e)->kick();
    done.clear();
    while (done.size() < kDepth) {
      pollfd p{(*e)->event_fd(), POLLIN, 0};
      ::poll(&p, 1, 1000);
      (*e)->reap(done);
    }
  }
  state.SetItemsProcessed(int64_t(state.iterations()) * kDepth);
}

void BM_IoUring(benchmark::State& state) { engine_reads(state, BlkEngineKind::IoUring); }
void BM_ThreadPool(benchmark::State& state) { engine_reads(state, BlkEngineKind::Threads); }

void BM_PreadBaseline(benchmark::State& state) {
  std::vector<uint8_t> buf(kBlock);
  std::mt19937_64 rng(1);
  for (auto _ : state)
    for (unsigned i = 0; i < kDepth; ++i)
      benchmark::DoNotOptimize(::pread(image().fd, buf.data(), kBlock, off_t((rng() % (kImage / kBlock)) * kBlock)));
  state.SetItemsProcessed(int64_t(state.iterations()) * kDepth);
}

BENCHMARK(BM_PreadBaseline);
BENCHMARK(BM_IoUring);
BENCHMARK(BM_ThreadPool);

}  // namespace

BENCHMARK_MAIN();
