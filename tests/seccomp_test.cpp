// The evmm binary's sandbox: every thread runs under a seccomp filter from before the guest's first
// instruction (the default), and --no-seccomp runs without. The other integration tests run with
// the filters on, so they show the filters allow what evmm does.
#include <gtest/gtest.h>
#include <dirent.h>
#include <signal.h>

#include <chrono>
#include <fstream>
#include <map>
#include <thread>

#include "sandbox/seccomp.h"
#include "tests/kvm_test_util.h"

namespace evmm::testing {
namespace {

using namespace std::chrono_literals;

// "Seccomp_filters" of each thread of pid (Linux 5.9+), by thread id.
std::map<int, int> filters_per_thread(pid_t pid) {
  std::map<int, int> out;
  std::string dir = fmt::format("/proc/{}/task", pid);
  DIR* d = ::opendir(dir.c_str());
  if (!d) return out;
  while (dirent* e = ::readdir(d)) {
    if (e->d_name[0] == '.') continue;
    std::ifstream f(dir + "/" + e->d_name + "/status");
    std::string line;
    while (std::getline(f, line))
      if (line.rfind("Seccomp_filters:", 0) == 0) out[std::atoi(e->d_name)] = std::atoi(line.c_str() + 16);
  }
  ::closedir(d);
  return out;
}

// Boots a 2-vCPU guest that suspends itself, looks at evmm's threads while it sleeps, then wakes it
// with SIGUSR1 (the guest then exits with status 1).
std::map<int, int> threads_of_a_running_evmm(std::vector<std::string> extra, ProcessResult* r) {
  std::map<int, int> seen;
  ProcessOptions opts;
  opts.timeout = 30s;
  opts.while_running = [&seen](pid_t pid) {
    // main, two vCPUs, the device loop; the vCPUs install their filters as they start.
    for (auto end = std::chrono::steady_clock::now() + 10s; std::chrono::steady_clock::now() < end;) {
      seen = filters_per_thread(pid);
      if (seen.size() >= 4) break;
      std::this_thread::sleep_for(10ms);
    }
    std::this_thread::sleep_for(300ms);
    seen = filters_per_thread(pid);
    ::kill(pid, SIGUSR1);
  };
  *r = boot("testprog.mb.elf", "pvsuspend exit=0", 2, extra, opts);
  return seen;
}

TEST(Seccomp, EveryEvmmThreadRunsFiltered) {
  REQUIRE_KVM();
  if (!seccomp::supported()) GTEST_SKIP() << "seccomp filters are off in sanitizer builds";
  ProcessResult r;
  auto threads = threads_of_a_running_evmm({}, &r);
  EXPECT_EQ(r.exit_status, 1) << r.out << r.err;
  EXPECT_TRUE(has(r.out, "pvsuspend: resumed")) << r.out;
  ASSERT_GE(threads.size(), 4u);
  int narrowed = 0;
  for (auto [tid, filters] : threads) {
    EXPECT_GE(filters, 1) << "thread " << tid;
    narrowed += filters >= 2;  // the main thread's filter and its own
  }
  EXPECT_GE(narrowed, 3) << "the vCPU and device threads add their own filters";
}

TEST(Seccomp, NoSeccompRunsUnfiltered) {
  REQUIRE_KVM();
  ProcessResult r;
  auto threads = threads_of_a_running_evmm({"--no-seccomp"}, &r);
  EXPECT_EQ(r.exit_status, 1) << r.out << r.err;
  ASSERT_GE(threads.size(), 4u);
  for (auto [tid, filters] : threads) EXPECT_EQ(filters, 0) << "thread " << tid;
}

}  // namespace
}  // namespace evmm::testing
