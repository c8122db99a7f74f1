// Startup benchmark: evmm against QEMU 7.2, side by side in one run, booting the same multiboot
// image (first_insn.S). For each VMM and each run it measures
//   - the time from exec to the guest's first instruction, seen as that instruction's output byte
//     arriving on the VMM's stdout (the same observation for both VMMs), and
//   - the VMM's own resident memory, VmRSS minus RssShmem, while the guest sits halted. Guest RAM is
//     shared memory for both (evmm's memfd; QEMU gets memory-backend-memfd), so RssShmem is exactly
//     the guest memory the guest (and its loader) touched.
// Usage: evmm_startup_bench [runs]   (default 20; QEMU is skipped with a note when absent)
#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <spawn.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <chrono>
#include <cstdio>
#include <cstring>
#include <fstream>
#include <optional>
#include <string>
#include <vector>

#include <fmt/format.h>

extern char** environ;

namespace {

using Clock = std::chrono::steady_clock;

struct Sample {
  double startup_ms;
  double vmm_rss_mib;   // VmRSS - RssShmem
  double guest_mib;     // RssShmem
};

long status_kib(pid_t pid, const char* key) {
  std::ifstream f(fmt::format("/proc/{}/status", pid));
  std::string line;
  size_t n = std::strlen(key);
  while (std::getline(f, line))
    if (line.compare(0, n, key) == 0 && line[n] == ':') return std::stol(line.substr(n + 1));
  return -1;
}

std::optional<Sample> run_once(const std::vector<std::string>& argv) {
  int out[2];
  if (pipe2(out, O_CLOEXEC) < 0) return std::nullopt;
  posix_spawn_file_actions_t fa;
  posix_spawn_file_actions_init(&fa);
  posix_spawn_file_actions_adddup2(&fa, out[1], 1);
  posix_spawn_file_actions_addopen(&fa, 0, "/dev/null", O_RDONLY, 0);
  posix_spawn_file_actions_addopen(&fa, 2, "/dev/null", O_WRONLY, 0);
  std::vector<char*> args;
  for (auto& a : argv) args.push_back(const_cast<char*>(a.c_str()));
  args.push_back(nullptr);
  pid_t pid;
  auto t0 = Clock::now();
  int rc = posix_spawn(&pid, args[0], &fa, nullptr, args.data(), environ);
  posix_spawn_file_actions_destroy(&fa);
  close(out[1]);
  if (rc != 0) {
    close(out[0]);
    return std::nullopt;
  }
  bool seen = false;
  auto deadline = t0 + std::chrono::seconds(30);
  while (!seen && Clock::now() < deadline) {
    pollfd p{out[0], POLLIN, 0};
    if (poll(&p, 1, 100) <= 0) continue;
    char buf[256];
    ssize_t n = read(out[0], buf, sizeof buf);
    if (n <= 0) break;
    seen = std::memchr(buf, 'R', static_cast<size_t>(n)) != nullptr;
  }
  auto t1 = Clock::now();
  std::optional<Sample> s;
  if (seen) {
    // Let the VMM settle (the byte is written before the vCPU halts), then read its memory.
    usleep(50 * 1000);
    long rss = status_kib(pid, "VmRSS"), shmem = status_kib(pid, "RssShmem");
    s = Sample{std::chrono::duration<double, std::milli>(t1 - t0).count(), (rss - shmem) / 1024.0, shmem / 1024.0};
  }
  kill(pid, SIGTERM);
  int st;
  waitpid(pid, &st, 0);
  close(out[0]);
  return s;
}

double pct(std::vector<double> v, double p) {
  std::sort(v.begin(), v.end());
  return v[std::min(v.size() - 1, static_cast<size_t>(p * (v.size() - 1) + 0.5))];
}

struct Summary {
  std::string name;
  std::vector<Sample> samples;
};

void report(const std::vector<Summary>& all) {
  fmt::print("{:<8} {:>5} {:>14} {:>14} {:>16} {:>14}\n", "vmm", "runs", "first insn p50", "first insn p90",
             "VMM RSS p50 MiB", "guest RSS MiB");
  for (const auto& s : all) {
    std::vector<double> t, r, g;
    for (auto& x : s.samples) t.push_back(x.startup_ms), r.push_back(x.vmm_rss_mib), g.push_back(x.guest_mib);
    if (t.empty()) {
      fmt::print("{:<8} {:>5}   (no successful run)\n", s.name, 0);
      continue;
    }
    fmt::print("{:<8} {:>5} {:>11.2f} ms {:>11.2f} ms {:>16.2f} {:>14.2f}\n", s.name, t.size(), pct(t, 0.5),
               pct(t, 0.9), pct(r, 0.5), pct(g, 0.5));
  }
  if (all.size() == 2 && !all[0].samples.empty() && !all[1].samples.empty()) {
    std::vector<double> t0, t1, r0, r1;
    for (auto& x : all[0].samples) t0.push_back(x.startup_ms), r0.push_back(x.vmm_rss_mib);
    for (auto& x : all[1].samples) t1.push_back(x.startup_ms), r1.push_back(x.vmm_rss_mib);
    fmt::print("ratio qemu/evmm: first instruction {:.1f}x, VMM RSS {:.1f}x\n", pct(t1, 0.5) / pct(t0, 0.5),
               pct(r1, 0.5) / pct(r0, 0.5));
  }
}

}  // namespace

int main(int argc, char** argv) {
  int runs = argc > 1 ? std::max(1, std::atoi(argv[1])) : 20;
  std::vector<Summary> all;

  std::vector<std::string> evmm{EVMM_BINARY, "run", "--kernel", BENCH_GUEST, "--memory", "64", "--serial", "stdio"};
  std::vector<std::string> qemu{"/usr/bin/qemu-system-x86_64",
                                "-machine", "pc,accel=kvm,memory-backend=ram",
                                "-cpu", "host,-arch-capabilities",
                                "-object", "memory-backend-memfd,id=ram,size=64M",
                                "-m", "64", "-smp", "1",
                                "-nodefaults", "-no-user-config", "-display", "none",
                                "-serial", "none", "-monitor", "none", "-debugcon", "stdio",
                                "-kernel", BENCH_GUEST};
  bool have_qemu = access(qemu[0].c_str(), X_OK) == 0;

  Summary e{"evmm", {}}, q{"qemu-7.2", {}};
  // Interleave the runs so that drift in the host's load affects both alike.
  for (int i = 0; i < runs; ++i) {
    if (auto s = run_once(evmm)) e.samples.push_back(*s);
    if (have_qemu)
      if (auto s = run_once(qemu)) q.samples.push_back(*s);
  }
  all.push_back(e);
  if (have_qemu) all.push_back(q);
  else fmt::print("note: {} not found; QEMU column skipped (make bench installs it)\n", qemu[0]);
  report(all);
  return e.samples.empty() ? 1 : 0;
}
