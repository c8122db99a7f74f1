// Linux boot time: evmm against QEMU 7.2 (`-M microvm`, `-kernel`), side by side in one run, on the same
// small kernel (guests/linux/tiny.config, entered through its PVH note by both) and the same ext4 root
// image on virtio-blk (virtio-mmio on both, read-only). For each run it times, from exec, the arrival on
// the VMM's stdout (ttyS0) of
//   - the banner ("Linux version"), and
//   - the root mount ("VFS: Mounted root"),
// then kills the VMM. Runs alternate between the two VMMs; the table gives each one's median.
// The kernel and image come from `make linux-guest` (or EVMM_GUEST_KERNEL / EVMM_GUEST_ROOTFS, for a
// vmlinux and rootfs.ext4 built elsewhere); without them the bench says so and exits 0.
//
// The kernel's own clock at the root mount (its printk timestamp) is shown beside the wall time.
//
//   evmm_linux_boot_bench [runs] [cpus] [timeout_s]   (defaults 3, 2 and 600 per boot)
#include <unistd.h>

#include <algorithm>
#include <cstdio>
#include <cstdlib>
#include <map>
#include <string>
#include <vector>

#include <fmt/format.h>

#include "bench/child.h"

namespace {

constexpr const char* kQemu = "/usr/bin/qemu-system-x86_64";
constexpr const char* kBanner = "Linux version";
constexpr const char* kRoot = "VFS: Mounted root";
constexpr const char* kCmdline = "console=ttyS0 root=/dev/vda ro rootfstype=ext4 panic=-1";

struct Boot {
  double banner_ms = -1, root_ms = -1;
  double root_kernel_ms = -1;  // the kernel's printk timestamp on the root mount line
};

struct Side {
  std::string name;
  std::vector<std::string> argv;
  std::vector<Boot> boots;
  std::string failure;
};

std::string from_env(const char* var, const std::string& dflt) {
  const char* v = std::getenv(var);
  return v && *v ? v : dflt;
}

void boot_once(Side& s, std::chrono::seconds deadline) {
  Boot b;
  auto r = evmm::bench::run_child(
      s.argv,
      [&](const std::string& line, double ms) {
        if (b.banner_ms < 0 && line.find(kBanner) != std::string::npos) b.banner_ms = ms;
        if (auto at = line.find(kRoot); at != std::string::npos) {
          b.root_ms = ms;
          double t;
          if (auto open = line.rfind('[', at); open != std::string::npos && std::sscanf(line.c_str() + open, "[%lf]", &t) == 1)
            b.root_kernel_ms = t * 1000;
          return true;
        }
        return false;
      },
      deadline);
  if (b.banner_ms >= 0 && b.root_ms >= 0) {
    s.boots.push_back(b);
    return;
  }
  if (s.failure.empty())
    s.failure = fmt::format("status {}{}, banner {}: ...{}", r.status, r.timed_out ? " (timed out)" : "",
                            b.banner_ms >= 0 ? "seen" : "not seen", r.out.substr(r.out.size() > 2000 ? r.out.size() - 2000 : 0));
}

double median(std::vector<double> v) {
  std::sort(v.begin(), v.end());
  return v.empty() ? -1 : v[v.size() / 2];
}

}  // namespace

int main(int argc, char** argv) {
  int runs = argc > 1 ? std::max(1, std::atoi(argv[1])) : 3;
  int cpus = argc > 2 ? std::max(1, std::atoi(argv[2])) : 2;
  std::chrono::seconds deadline(argc > 3 ? std::max(1, std::atoi(argv[3])) : 600);
  const std::string kernel = from_env("EVMM_GUEST_KERNEL", EVMM_GUEST_KERNEL_DIR "/build/vmlinux");
  const std::string rootfs = from_env("EVMM_GUEST_ROOTFS", EVMM_GUEST_ROOTFS_DIR "/rootfs.ext4");
  for (const auto& f : {kernel, rootfs})
    if (access(f.c_str(), R_OK) != 0) {
      fmt::print("linux boot bench skipped: {} is missing (make linux-guest builds it, or set EVMM_GUEST_KERNEL "
                 "and EVMM_GUEST_ROOTFS)\n", f);
      return 0;
    }
  const std::string smp = std::to_string(cpus);
  // Without /dev/kvm evmm cannot run; QEMU still boots under TCG, which compares with nothing here.
  const bool kvm = access("/dev/kvm", R_OK | W_OK) == 0;
  std::vector<Side> sides{
      {"evmm",
       {EVMM_BINARY, "run", "--kernel", kernel, "--cpus", smp, "--memory", "256", "--serial", "stdio", "--disk",
        "path=" + rootfs + ",readonly", "--cmdline", kCmdline},
       {}, {}},
      // microvm with ACPI: the kernel finds the virtio-mmio disk as LNRO0005 in the DSDT (evmm's default
      // is virtio_mmio.device= on the command line, which it adds itself).
      {"qemu-7.2",
       {kQemu, "-M", "microvm,acpi=on", "-accel", kvm ? "kvm" : "tcg", "-cpu", kvm ? "host,-arch-capabilities" : "max", "-smp", smp, "-m", "256",
        "-global", "virtio-mmio.force-legacy=false", "-serial", "stdio", "-display", "none", "-monitor", "none",
        "-no-reboot", "-kernel", kernel, "-append", kCmdline, "-drive",
        "file=" + rootfs + ",if=none,id=d0,format=raw,readonly=on", "-device", "virtio-blk-device,drive=d0"},
       {}, {}},
  };
  if (!kvm) sides[1].name = "qemu (TCG)";
  const bool have_qemu = access(kQemu, X_OK) == 0;
  if (!have_qemu) sides.pop_back();
  if (!kvm) {
    sides[0].failure = "skipped: /dev/kvm is absent on this host";
    sides.erase(sides.begin());
  }
  for (int i = 0; i < runs; i++)
    for (size_t k = 0; k < sides.size(); k++) boot_once(sides[(i + k) % sides.size()], deadline);

  fmt::print("Linux boot, {} vCPUs, 256 MiB, kernel {}, root {} (read-only virtio-blk); ms from exec, median of {} "
             "runs each, interleaved\n", cpus, kernel, rootfs, runs);
  if (!have_qemu) fmt::print("note: {} not found; QEMU skipped (make bench installs it)\n", kQemu);
  if (!kvm) fmt::print("note: no /dev/kvm on this host: evmm skipped, QEMU ran TCG (no comparison)\n");
  fmt::print("{:<10} {:>5} {:>12} {:>12} {:>12} {:>12} {:>18}\n", "vmm", "runs", "banner p50", "root p50", "root min",
             "root max", "kernel clock p50");
  std::map<std::string, std::pair<double, double>> med;
  for (auto& s : sides) {
    if (!s.failure.empty()) fmt::print("{} failed: {}\n", s.name, s.failure);
    std::vector<double> banner, root, kernel;
    for (auto& b : s.boots) banner.push_back(b.banner_ms), root.push_back(b.root_ms), kernel.push_back(b.root_kernel_ms);
    if (root.empty()) {
      fmt::print("{:<10} {:>5}   (no run reached the root mount)\n", s.name, 0);
      continue;
    }
    med[s.name] = {median(banner), median(root)};
    fmt::print("{:<10} {:>5} {:>12.0f} {:>12.0f} {:>12.0f} {:>12.0f} {:>18.0f}\n", s.name, root.size(), med[s.name].first,
               med[s.name].second, *std::min_element(root.begin(), root.end()), *std::max_element(root.begin(), root.end()),
               median(kernel));
  }
  if (med.count("evmm") && med.count("qemu-7.2"))
    fmt::print("ratio evmm/qemu: banner {:.2f}x, root mount {:.2f}x\n", med["evmm"].first / med["qemu-7.2"].first,
               med["evmm"].second / med["qemu-7.2"].second);
  return med.count("evmm") || !kvm ? 0 : 1;
}
