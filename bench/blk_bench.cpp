// virtio-blk from evmm's own guest driver (guests/blkbench), side by side in one run with
//  - the host reading and writing the same image file itself, with the same access pattern,
//  - the same guest on evmm with the disk out of process (`--disk vhost-user=`), served by QEMU's
//    qemu-storage-daemon and by `evmm device blk`, and
//  - QEMU 7.2's `-M microvm` serving the same guest image from the same file through its virtio-mmio blk.
// Phases: 4 KiB random reads (IOPS), 1 MiB sequential reads and writes (MiB/s), and `null` (get-id
// requests: the request floor without disk I/O). All three sides go through the host page cache:
// evmm's blk opens the image buffered, QEMU gets cache=writeback, the host loop uses plain pread and
// pwrite; the image is written (so cached) before the first run. The guest times each phase with its
// TSC, converted with KVM's TSC rate (no TSC scaling on these hosts, so both VMMs' guests count at it).
// Rounds are interleaved with a rotating order; each cell is the median round.
//
//   evmm_blk_bench [reads] [mib] [rounds]   (defaults 1000, 32, 5; the QEMU sides are skipped with a note
//                                            when QEMU is absent)
#include <fcntl.h>
#include <x86intrin.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <chrono>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <filesystem>
#include <map>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include <fmt/format.h>

#include "bench/child.h"
#include "testing/vhost_blk_driver.h"
#include "src/kvm/system.h"
#include "src/kvm/vcpu_fd.h"
#include "src/kvm/vm_fd.h"

using namespace evmm;

namespace {

constexpr const char* kQemu = "/usr/bin/qemu-system-x86_64";

struct Phase {
  uint64_t ops = 0, bytes = 0;
  double us = 0;  // wall time of the whole phase
};
using Phases = std::map<std::string, Phase>;

struct Side {
  std::string name;
  std::vector<Phases> rounds;
  std::string failure;  // the first failed run's output tail
};

// The rate the guests' TSC counts at: KVM's (KVM_GET_TSC_KHZ; no TSC scaling on these hosts, so both
// VMMs' guests count at it), or, without /dev/kvm (QEMU then runs TCG, whose rdtsc reads the host's TSC),
// the host's TSC measured against CLOCK_MONOTONIC over 200 ms.
uint32_t tsc_khz(bool kvm) {
  if (kvm) {
    auto sys = System::open();
    if (!sys) return 0;
    auto vm = sys->create_vm();
    if (!vm) return 0;
    auto vcpu = vm->create_vcpu(0);
    if (!vcpu) return 0;
    auto khz = vcpu->get_tsc_khz();
    return khz ? *khz : 0;
  }
  auto t0 = std::chrono::steady_clock::now();
  uint64_t c0 = __rdtsc();
  usleep(200 * 1000);
  uint64_t c1 = __rdtsc();
  double ms = std::chrono::duration<double, std::milli>(std::chrono::steady_clock::now() - t0).count();
  return uint32_t(double(c1 - c0) / ms);
}

// The guest's loops, run by the host on the same file: the same xorshift64 offsets and request sizes.
std::optional<Phases> host_run(const std::string& path, uint64_t reads, uint64_t mib, uint64_t sectors) {
  using Clock = std::chrono::steady_clock;
  int fd = open(path.c_str(), O_RDWR | O_CLOEXEC);
  if (fd < 0) return std::nullopt;
  // Aligned as the guest's buffer is (1 MiB), so neither side's copy pays for a misaligned one.
  std::unique_ptr<char, decltype(&std::free)> buf(static_cast<char*>(std::aligned_alloc(1 << 20, 1 << 20)), &std::free);
  if (!buf) return std::nullopt;
  Phases ph;
  // Warm-up as the guest does it: the buffer's pages faulted in, one request of each size served.
  std::memset(buf.get(), 0x5a, 1 << 20);
  bool ok = pread(fd, buf.get(), 4096, 0) == 4096 && pread(fd, buf.get(), 1 << 20, 0) == (1 << 20);
  auto us = [](Clock::time_point t0) { return std::chrono::duration<double, std::micro>(Clock::now() - t0).count(); };
  uint64_t x = 1, blocks = sectors / 8;
  auto t0 = Clock::now();
  for (uint64_t i = 0; i < reads; i++) {
    x ^= x << 13, x ^= x >> 7, x ^= x << 17;
    ok &= pread(fd, buf.get(), 4096, off_t(x % blocks * 4096)) == 4096;
  }
  ph["rand4k"] = {reads, reads * 4096, us(t0)};
  t0 = Clock::now();
  for (uint64_t i = 0; i < mib; i++) ok &= pread(fd, buf.get(), 1 << 20, off_t(i << 20)) == (1 << 20);
  ph["seqread"] = {mib, mib << 20, us(t0)};
  t0 = Clock::now();
  for (uint64_t i = 0; i < mib; i++) ok &= pwrite(fd, buf.get(), 1 << 20, off_t(i << 20)) == (1 << 20);
  ph["seqwrite"] = {mib, mib << 20, us(t0)};
  close(fd);
  if (!ok) return std::nullopt;
  return ph;
}

// Runs one VMM on the blkbench guest and parses its "blkbench: <phase> ops= bytes= cycles=" lines.
std::optional<Phases> vm_run(const std::vector<std::string>& argv, uint32_t khz, std::string* failure) {
  Phases ph;
  auto r = bench::run_child(
      argv,
      [&](const std::string& line, double) {
        char name[16];
        unsigned long long ops, bytes, cycles;
        if (std::sscanf(line.c_str(), "blkbench: %15s ops=%llu bytes=%llu cycles=%llu", name, &ops, &bytes, &cycles) == 4)
          ph[name] = {ops, bytes, double(cycles) * 1000.0 / khz};
        return false;
      },
      std::chrono::seconds(600));
  // rt_exit(0) through debug-exit: status (0 << 1) | 1 on both VMMs.
  if (r.status == 1 && ph.size() == 5) return ph;
  if (failure->empty())
    *failure = fmt::format("status {}{}: ...{}", r.status, r.timed_out ? " (timed out)" : "",
                           r.out.substr(r.out.size() > 1500 ? r.out.size() - 1500 : 0));
  return std::nullopt;
}

// The median round's value of f over a side's rounds that have the phase.
template <typename F>
std::optional<double> median(const Side& s, const char* phase, F f) {
  std::vector<double> v;
  for (auto& r : s.rounds)
    if (auto it = r.find(phase); it != r.end() && it->second.ops) v.push_back(f(it->second));
  if (v.empty()) return std::nullopt;
  std::sort(v.begin(), v.end());
  return v[v.size() / 2];
}

double per_op_us(const Phase& p) { return p.us / double(p.ops); }
double iops(const Phase& p) { return double(p.ops) * 1e6 / p.us; }
double mib_s(const Phase& p) { return double(p.bytes) / double(1 << 20) * 1e6 / p.us; }

std::string cell(std::optional<double> v, const char* f = "{:.1f}") {
  return v ? fmt::format(fmt::runtime(f), *v) : std::string("-");
}
std::string ratio(std::optional<double> a, std::optional<double> b) {
  return a && b && *b > 0 ? fmt::format("{:.3f}x", *a / *b) : std::string("-");
}

}  // namespace

int main(int argc, char** argv) {
  uint64_t reads = argc > 1 ? std::strtoull(argv[1], nullptr, 10) : 1000;
  uint64_t mib = argc > 2 ? std::strtoull(argv[2], nullptr, 10) : 32;
  int rounds = argc > 3 ? std::atoi(argv[3]) : 5;
  if (reads == 0 || mib == 0 || rounds <= 0) {
    std::fprintf(stderr, "usage: %s [reads] [mib] [rounds]\n", argv[0]);
    return 2;
  }
  // Without /dev/kvm evmm cannot run; QEMU still can, under TCG, which shows the guest and the harness
  // work but compares with nothing here.
  const bool kvm = access("/dev/kvm", R_OK | W_OK) == 0;
  uint32_t khz = tsc_khz(kvm);
  if (!khz) {
    std::fprintf(stderr, "cannot read KVM's TSC rate (KVM_GET_TSC_KHZ)\n");
    return 1;
  }
  // The image: mib + 32 MiB of non-zero data (allocated blocks, no holes), in the page cache once written.
  const uint64_t disk_mib = mib + 32, sectors = disk_mib << 11;
  std::string dir = (std::filesystem::temp_directory_path() / "evmm-blk-bench-XXXXXX").string();
  if (!mkdtemp(dir.data())) return 1;
  const std::string image = dir + "/disk.img";
  {
    int fd = open(image.c_str(), O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);
    std::vector<uint64_t> chunk((1 << 20) / 8);
    uint64_t x = 0x9e3779b97f4a7c15ull;
    bool ok = fd >= 0;
    for (uint64_t m = 0; ok && m < disk_mib; m++) {
      for (auto& w : chunk) w = (x = x * 6364136223846793005ull + 1442695040888963407ull);
      ok = write(fd, chunk.data(), 1 << 20) == (1 << 20);
    }
    if (fd >= 0) close(fd);
    if (!ok) {
      std::fprintf(stderr, "cannot write %s: %s\n", image.c_str(), std::strerror(errno));
      return 1;
    }
  }
  const std::string guest = std::string(EVMM_GUEST_DIR) + "/blkbench.pvh.elf";
  const std::string words = fmt::format("reads={} mib={}", reads, mib);
  // evmm on the guest with its disk given as `--disk spec`.
  auto evmm_argv = [&](const std::string& disk) {
    return std::vector<std::string>{EVMM_BINARY, "run", "--kernel", guest, "--memory", "256", "--serial", "stdio",
                                    "--disk", disk, "--cmdline", words};
  };
  const std::vector<std::string> evmm = evmm_argv("path=" + image);
  // microvm with ACPI describes its virtio-mmio devices as LNRO0005 in the DSDT, as evmm does; modern
  // (version 2) transports; one IOAPIC; isa-debug-exit where the runtime exits.
  auto qemu_argv = [&](std::vector<std::string> accel, const std::string& cmdline) {
    std::vector<std::string> a{kQemu, "-M", "microvm,acpi=on,ioapic2=off,rtc=on"};
    a.insert(a.end(), accel.begin(), accel.end());
    for (const char* w : {"-m", "256", "-smp", "1", "-global", "virtio-mmio.force-legacy=false", "-serial", "stdio",
                          "-display", "none", "-monitor", "none", "-no-reboot", "-device", "isa-debug-exit,iobase=0xf4"})
      a.push_back(w);
    for (const auto& w : {std::string("-kernel"), guest, std::string("-append"), cmdline, std::string("-drive"),
                          "file=" + image + ",if=none,id=d0,format=raw,cache=writeback,aio=io_uring",
                          std::string("-device"), std::string("virtio-blk-device,drive=d0")})
      a.push_back(w);
    return a;
  };
  const auto qemu = kvm ? qemu_argv({"-accel", "kvm", "-cpu", "host,-arch-capabilities"}, words)
                        : qemu_argv({"-accel", "tcg", "-cpu", "max"}, words);
  const bool have_qemu = access(kQemu, X_OK) == 0, have_qsd = access(testing::kQemuStorageDaemon, X_OK) == 0;
  // evmm with its disk served over vhost-user by another process, started for each run (an `evmm
  // device` serves one frontend).
  auto vhost_user_run = [&](const std::vector<std::string>& backend, const std::string& sock,
                            std::string* failure) -> std::optional<Phases> {
    bench::SocketServer server(backend, sock);
    if (!server.ready()) {
      if (failure->empty()) *failure = backend[0] + " did not listen on " + sock;
      return std::nullopt;
    }
    return vm_run(evmm_argv("vhost-user=" + sock), khz, failure);
  };
  const std::string qsd_sock = dir + "/qsd.sock", device_sock = dir + "/device.sock";

  Side host{"host", {}, {}}, e{"evmm", {}, {}}, vq{"evmm+qsd", {}, {}}, vd{"evmm+device", {}, {}},
      q{kvm ? "qemu-7.2" : "qemu-7.2 (TCG)", {}, {}};
  if (!kvm) e.failure = vq.failure = vd.failure = "skipped: /dev/kvm is absent on this host";
  else if (!have_qsd) vq.failure = "skipped: qemu-storage-daemon is not installed (Debian's qemu-system-common)";
  for (int i = 0; i < rounds; i++) {
    // Rotate the order so that the host's load drift and cache state favour no side.
    for (int k = 0; k < 5; k++) {
      switch ((i + k) % 5) {
        case 0:
          if (auto p = host_run(image, reads, mib, sectors)) host.rounds.push_back(*p);
          else if (host.failure.empty()) host.failure = std::strerror(errno);
          break;
        case 1:
          if (kvm)
            if (auto p = vm_run(evmm, khz, &e.failure)) e.rounds.push_back(*p);
          break;
        case 2:
          if (kvm && have_qsd)
            if (auto p = vhost_user_run(testing::qsd_blk_export(image, qsd_sock), qsd_sock, &vq.failure))
              vq.rounds.push_back(*p);
          break;
        case 3:
          if (kvm)
            if (auto p = vhost_user_run({EVMM_BINARY, "device", "blk", "--socket", device_sock, "--disk", "path=" + image},
                                        device_sock, &vd.failure))
              vd.rounds.push_back(*p);
          break;
        case 4:
          if (have_qemu)
            if (auto p = vm_run(qemu, khz, &q.failure)) q.rounds.push_back(*p);
          break;
      }
    }
  }
  // The instructions the guest's driver runs per request (a null one, with its interrupt): QEMU's TCG
  // with icount shift=0 advances the guest's TSC by one per instruction, and completes get-id before
  // the guest looks, so no idle time is counted.
  std::optional<double> driver_insns;
  if (have_qemu) {
    std::string ignored;
    auto ic = qemu_argv({"-accel", "tcg", "-icount", "shift=0,sleep=off", "-cpu", "max"}, "reads=200 mib=1");
    if (auto p = vm_run(ic, 1000000, &ignored)) driver_insns = per_op_us((*p)["null"]) * 1000;
  }
  std::filesystem::remove_all(dir);

  fmt::print("virtio-blk through the page cache on every side ({} MiB image, TSC {} kHz {}): {} random 4 KiB "
             "reads, {} x 1 MiB sequential reads and writes; median of {} rounds (host {}, evmm {}, evmm+qsd {}, "
             "evmm+device {}, qemu {} completed)\n",
             disk_mib, khz, kvm ? "from KVM" : "measured on the host", reads, mib, rounds, host.rounds.size(),
             e.rounds.size(), vq.rounds.size(), vd.rounds.size(), q.rounds.size());
  fmt::print("evmm+qsd and evmm+device: the same guest on evmm, its disk `--disk vhost-user=` served by "
             "qemu-storage-daemon or by `evmm device blk`\n");
  if (!have_qemu) fmt::print("note: {} not found; the QEMU column is empty (make bench installs it)\n", kQemu);
  for (auto* s : {&host, &e, &vq, &vd, &q})
    if (!s->failure.empty()) fmt::print("{} failed: {}\n", s->name, s->failure);
  if (!kvm)
    fmt::print("note: no /dev/kvm: QEMU ran its TCG emulator (guest code translated, not KVM), so its column shows the "
               "guest and harness working, not a comparison\n");
  fmt::print("{:<22} {:>10} {:>10} {:>10} {:>11} {:>10} {:>10} {:>10} {:>10} {:>10}\n", "", "host", "evmm", "evmm+qsd",
             "evmm+device", "qemu", "evmm/host", "evmm/qemu", "qsd/evmm", "dev/evmm");
  auto row = [&](const char* label, const char* phase, auto f, const char* fmt_) {
    auto h = median(host, phase, f), ev = median(e, phase, f), uq = median(vq, phase, f), ud = median(vd, phase, f),
         qm = median(q, phase, f);
    fmt::print("{:<22} {:>10} {:>10} {:>10} {:>11} {:>10} {:>10} {:>10} {:>10} {:>10}\n", label, cell(h, fmt_),
               cell(ev, fmt_), cell(uq, fmt_), cell(ud, fmt_), cell(qm, fmt_), ratio(ev, h), ratio(ev, qm), ratio(uq, ev),
               ratio(ud, ev));
  };
  row("rand4k IOPS", "rand4k", iops, "{:.0f}");
  row("seqread MiB/s", "seqread", mib_s, "{:.1f}");
  row("seqwrite MiB/s", "seqwrite", mib_s, "{:.1f}");
  row("null request µs", "null", per_op_us, "{:.1f}");
  row("rand4k µs per read", "rand4k", per_op_us, "{:.1f}");
  row("seqread µs per MiB", "seqread", per_op_us, "{:.1f}");
  row("seqwrite µs per MiB", "seqwrite", per_op_us, "{:.1f}");
  // Where a guest request's time goes. The null request is the floor every request pays: the guest's
  // driver code (emulated at CPL0 on hosts without VT-x/AMD-V: its instruction count from QEMU's icount
  // times the spin phase's cost per instruction), then notification, device and interrupt. The host's
  // pread is the I/O itself; the rest of a read is the data path through the device.
  auto h4 = median(host, "rand4k", per_op_us);
  if (driver_insns) fmt::print("guest driver: {:.0f} instructions per request (QEMU TCG icount)\n", *driver_insns);
  for (auto* s : {&e, &vq, &vd, &q}) {
    auto n = median(*s, "null", per_op_us), r4 = median(*s, "rand4k", per_op_us), spin = median(*s, "spin", per_op_us);
    if (!n || !r4 || !spin) continue;
    fmt::print("{}: {:.3f} µs per guest instruction (spin); null request {:.1f} µs", s->name, *spin, *n);
    if (driver_insns)
      fmt::print(", of which guest code ~{:.1f} µs and notification + device + interrupt ~{:.1f} µs", *driver_insns * *spin,
                 std::max(0.0, *n - *driver_insns * *spin));
    fmt::print("; a 4 KiB read {:.1f} µs = null + {:.1f} µs for the data (the host's own pread: {})\n", *r4, *r4 - *n,
               h4 ? fmt::format("{:.1f} µs", *h4) : std::string("-"));
  }
  return (kvm && e.rounds.empty()) || host.rounds.empty() ? 1 : 0;
}
