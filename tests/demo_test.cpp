// The demo guest `make run` boots: every step of its tour passes, and the tour shows the event plane
// (doorbells by ioeventfd and irqfd) and a suspend/wake cycle.
#include <gtest/gtest.h>

#include <unistd.h>

#include <cstdlib>
#include <regex>
#include <thread>
#include <vector>

#include "tests/kvm_test_util.h"

namespace evmm::testing {
namespace {

TEST(DemoConcurrent, TourPassesEveryStepAndPowersOff) {
  REQUIRE_KVM();
  auto r = boot("demo.mb.elf", "", 2);
  EXPECT_EQ(r.exit_status, 0) << r.out << r.err;
  EXPECT_TRUE(has(r.out, "20 PIO + 20 MMIO rings caught by ioeventfd, 40 answered by irqfd on GSI 10 (device counted 40)"))
      << r.out;
  // The RTC alarm woke the suspended vCPU, and the guest's handler still took its interrupt.
  EXPECT_TRUE(has(r.out, "the RTC alarm woke it, and its interrupt was still delivered (1, register C 0x")) << r.out;
  // The guest takes its TSC rate from evmm's CPUID timing leaf rather than measuring it.
  EXPECT_TRUE(has(r.out, "MHz, as the hypervisor states it (CPUID 0x40000010)")) << r.out;
  EXPECT_FALSE(has(r.out, "[FAILED]")) << r.out;
  EXPECT_TRUE(has(r.out, "evmm demo: all steps ok; powering off through ACPI S5")) << r.out;
}

// `make run`'s devices: a scratch disk, virtio-rng and virtio-console. Each virtio step either drove
// its device (when evmm made it: --stats names it) or says the device is absent; never [FAILED].
TEST(DemoConcurrent, VirtioStepsDriveEveryDeviceEvmmMade) {
  REQUIRE_KVM();
  char disk[] = "/tmp/evmm-demo-disk-XXXXXX";
  int fd = ::mkstemp(disk);
  ASSERT_GE(fd, 0);
  ASSERT_EQ(::ftruncate(fd, 1 << 20), 0);
  ::close(fd);
  auto r = boot("demo.mb.elf", "", 2, {"--disk", std::string("path=") + disk, "--rng", "--console", "virtio", "--stats"});
  ::unlink(disk);
  EXPECT_EQ(r.exit_status, 0) << r.out << r.err;
  EXPECT_FALSE(has(r.out, "[FAILED]")) << r.out;
  EXPECT_TRUE(has(r.out, "evmm demo: all steps ok; powering off through ACPI S5")) << r.out;
  // rng is on main from the start: 16 bytes, not all equal.
  EXPECT_TRUE(std::regex_search(r.out, std::regex("  rng +16 bytes from the host's getrandom:( [0-9a-f]{2}){16} \\(not all equal\\)")))
      << r.out;
  if (has(r.err, "virtio-blk:")) {
    EXPECT_TRUE(std::regex_search(r.out, std::regex("  blk +1024 KiB disk \"[^\"]*\": wrote sector 1, read it back, checksum "
                                                    "0x([0-9a-f]{8}) == 0x\\1; flushed")))
        << r.out;
  } else {
    EXPECT_TRUE(has(r.out, "no virtio-blk device in the DSDT (evmm run --disk path=FILE)")) << r.out;
  }
  if (has(r.err, "virtio-console:")) {
    EXPECT_TRUE(has(r.out, "evmm demo: this line came through virtio-console\n")) << r.out;
    EXPECT_TRUE(has(r.out, "wrote a 49-byte line to port 0 (hvc0)")) << r.out;
  } else {
    EXPECT_TRUE(has(r.out, "no virtio-console device in the DSDT (evmm run --console virtio)")) << r.out;
  }
}

// Many VMs on few cores: each guest's clock must not depend on how busy the host is. Before the
// CPUID timing leaf, the guest calibrated its TSC against a LAPIC timer that load had skewed, and
// some of 100 demos reported a 1-second suspend as minutes and failed that step.
TEST(DemoLoad, FiftyAtOnceEveryTourPasses) {
  REQUIRE_KVM();
  constexpr int kVms = 50;
  std::vector<ProcessResult> results(kVms);
  std::vector<std::thread> threads;
  ProcessOptions opts;
  opts.timeout = std::chrono::minutes(8);
  for (int i = 0; i < kVms; ++i)
    threads.emplace_back([&, i] { results[i] = boot("demo.mb.elf", "", 2, {"--serial", "stdio"}, opts); });
  for (auto& t : threads) t.join();
  for (int i = 0; i < kVms; ++i) {
    const auto& r = results[i];
    EXPECT_FALSE(r.timed_out) << "VM " << i;
    EXPECT_EQ(r.exit_status, 0) << "VM " << i << ": " << r.out << r.err;
    EXPECT_FALSE(has(r.out, "[FAILED]")) << "VM " << i << ": " << r.out;
    EXPECT_TRUE(has(r.out, "evmm demo: all steps ok; powering off through ACPI S5")) << "VM " << i << ": " << r.out;
  }
}

}  // namespace
}  // namespace evmm::testing
