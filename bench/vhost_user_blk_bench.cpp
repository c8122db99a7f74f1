// vhost-user-blk backends side by side in one run, from the same driver (testing/vhost_blk_driver.h:
// a split ring in a memfd shared with the backend, one request at a time, kick and call eventfds):
//  - `evmm device blk` (evmm's virtio-blk device behind vhost::Backend, in its own process),
//  - QEMU 7.2's qemu-storage-daemon exporting the same image as vhost-user-blk,
//  - each of the two with dirty logging on (`+log`: LOG_SHMFD and VHOST_F_LOG_ALL, the backend marking
//    every page it writes in a memory/page_log.h log, as during a live migration; the log is taken
//    after each phase),
//  - and the host reading the file itself with pread, the same pattern (the floor without virtio).
// Phases: 4 KiB random reads (IOPS) and 1 MiB sequential reads (MiB/s). Everything goes through the
// host page cache (the image is written before the first round). Rounds interleave the backends with
// a rotating order; each cell is the median round.
//
//   evmm_vhost_user_blk_bench [reads] [mib] [rounds]   (defaults 2000, 64, 5; qemu-storage-daemon is
//                                                      skipped with a note when absent)
#include <fcntl.h>
#include <unistd.h>

#include <algorithm>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <map>
#include <optional>
#include <random>
#include <string>
#include <vector>

#include <fmt/format.h>

#include "bench/child.h"
#include "memory/page_log.h"
#include "testing/vhost_blk_driver.h"

using namespace evmm;
using namespace evmm::testing;

namespace {

constexpr uint64_t kImageMiB = 256;
using Clock = std::chrono::steady_clock;

struct Outcome {
  double iops = 0, mib_s = 0;
  std::string error;
};

std::vector<uint64_t> random_sectors(unsigned n) {
  std::mt19937_64 rng(42);
  std::vector<uint64_t> s(n);
  for (auto& v : s) v = (rng() % (kImageMiB * 256)) * 8;  // 4 KiB aligned
  return s;
}

Outcome through_backend(const std::string& sock, unsigned reads, unsigned mib, bool log) {
  Outcome r;
  auto fe = Frontend::connect(sock);
  if (!fe) return r.error = fe.error().message(), r;
  if (auto n = (*fe)->negotiate(0); !n) return r.error = n.error().message(), r;
  BlkDriver d;
  if (auto o = d.open(**fe); !o) return r.error = o.error().message(), r;
  std::optional<PageLog> pages;
  if (log) {
    auto l = PageLog::create(BlkDriver::kRam);
    if (!l) return r.error = l.error().message(), r;
    pages.emplace(std::move(*l));
    if (auto b = (*fe)->set_log_base(pages->fd(), pages->size()); !b) return r.error = b.error().message(), r;
    if (auto b = (*fe)->set_logging(true); !b) return r.error = b.error().message(), r;
  }
  auto t0 = Clock::now();
  for (uint64_t sector : random_sectors(reads)) {
    auto s = d.request(VIRTIO_BLK_T_IN, sector, 4096);
    if (!s || *s != VIRTIO_BLK_S_OK) return r.error = s ? fmt::format("status {}", *s) : s.error().message(), r;
  }
  if (pages && set_pages(pages->take()).empty()) return r.error = "the backend marked nothing", r;
  r.iops = reads / std::chrono::duration<double>(Clock::now() - t0).count();
  t0 = Clock::now();
  for (unsigned i = 0; i < mib; ++i) {
    auto s = d.request(VIRTIO_BLK_T_IN, uint64_t(i % kImageMiB) * 2048, 1 << 20);
    if (!s || *s != VIRTIO_BLK_S_OK) return r.error = s ? fmt::format("status {}", *s) : s.error().message(), r;
  }
  if (pages) (void)pages->take();
  r.mib_s = mib / std::chrono::duration<double>(Clock::now() - t0).count();
  (void)(*fe)->stop_ring(0);
  return r;
}

Outcome host(const std::string& image, unsigned reads, unsigned mib) {
  Outcome r;
  int fd = ::open(image.c_str(), O_RDONLY | O_CLOEXEC);
  std::vector<uint8_t> buf(1 << 20);
  auto t0 = Clock::now();
  for (uint64_t sector : random_sectors(reads))
    if (::pread(fd, buf.data(), 4096, off_t(sector * 512)) != 4096) return r.error = "pread", r;
  r.iops = reads / std::chrono::duration<double>(Clock::now() - t0).count();
  t0 = Clock::now();
  for (unsigned i = 0; i < mib; ++i)
    if (::pread(fd, buf.data(), 1 << 20, off_t(uint64_t(i % kImageMiB) << 20)) != 1 << 20) return r.error = "pread", r;
  r.mib_s = mib / std::chrono::duration<double>(Clock::now() - t0).count();
  ::close(fd);
  return r;
}

Outcome run_side(const std::string& side, const std::string& dir, const std::string& image, unsigned reads, unsigned mib) {
  if (side == "host") return host(image, reads, mib);
  const bool log = side.ends_with("+log");
  const std::string sock = dir + "/" + side + ".sock";
  bench::SocketServer backend(side.starts_with("evmm") ? std::vector<std::string>{EVMM_BINARY, "device", "blk", "--socket",
                                                                                   sock, "--disk", "path=" + image}
                                                       : qsd_blk_export(image, sock),
                              sock);
  if (!backend.ready()) return Outcome{0, 0, "the backend did not listen"};
  return through_backend(sock, reads, mib, log);
}

double median(std::vector<double> v) {
  std::sort(v.begin(), v.end());
  return v.empty() ? 0 : v[v.size() / 2];
}

}  // namespace

int main(int argc, char** argv) {
  const unsigned reads = argc > 1 ? unsigned(std::atoi(argv[1])) : 2000;
  const unsigned mib = argc > 2 ? unsigned(std::atoi(argv[2])) : 64;
  const unsigned rounds = argc > 3 ? unsigned(std::atoi(argv[3])) : 5;
  char tmpl[] = "/tmp/evmm-vhost-bench-XXXXXX";
  if (!::mkdtemp(tmpl)) return 1;
  const std::string dir = tmpl, image = dir + "/disk.img";
  {
    std::vector<uint8_t> mb(1 << 20);
    std::mt19937 rng(7);
    FILE* f = std::fopen(image.c_str(), "wb");
    for (uint64_t i = 0; i < kImageMiB; ++i) {
      for (auto& b : mb) b = uint8_t(rng());
      std::fwrite(mb.data(), 1, mb.size(), f);
    }
    std::fclose(f);
  }
  std::vector<std::string> sides{"evmm", "evmm+log", "host"};
  if (::access(kQemuStorageDaemon, X_OK) == 0) sides.insert(sides.begin() + 2, {"qsd", "qsd+log"});
  else fmt::print("note: {} is not installed (Debian's qemu-system-common); its column is left out\n", kQemuStorageDaemon);
  std::map<std::string, std::vector<double>> iops, mibs;
  for (unsigned round = 0; round < rounds; ++round) {
    for (size_t k = 0; k < sides.size(); ++k) {
      const std::string& side = sides[(k + round) % sides.size()];
      auto r = run_side(side, dir, image, reads, mib);
      if (!r.error.empty()) {
        fmt::print(stderr, "{}: {}\n", side, r.error);
        (void)!std::system(("rm -rf " + dir).c_str());
        return 1;
      }
      iops[side].push_back(r.iops);
      mibs[side].push_back(r.mib_s);
    }
  }
  (void)!std::system(("rm -rf " + dir).c_str());
  fmt::print("vhost-user-blk, one request at a time, {} rounds (median), {} x 4 KiB random reads, {} x 1 MiB reads\n",
             rounds, reads, mib);
  fmt::print("{:<9} {:>12} {:>12}\n", "side", "4K IOPS", "1M MiB/s");
  for (const auto& side : sides) fmt::print("{:<9} {:>12.0f} {:>12.0f}\n", side, median(iops[side]), median(mibs[side]));
  if (iops.count("qsd"))
    fmt::print("evmm/qsd: {:.2f}x IOPS, {:.2f}x MiB/s\n", median(iops["evmm"]) / median(iops["qsd"]),
               median(mibs["evmm"]) / median(mibs["qsd"]));
  for (const char* b : {"evmm", "qsd"})
    if (iops.count(b))
      fmt::print("{} with the dirty log / without: {:.2f}x IOPS, {:.2f}x MiB/s\n", b,
                 median(iops[std::string(b) + "+log"]) / median(iops[b]), median(mibs[std::string(b) + "+log"]) / median(mibs[b]));
  return 0;
}
