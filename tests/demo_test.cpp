// The demo guest `make run` boots: every step of its tour passes, and the tour shows the event plane
// (doorbells by ioeventfd and irqfd) and a suspend/wake cycle.
#include <gtest/gtest.h>

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
  EXPECT_FALSE(has(r.out, "[FAILED]")) << r.out;
  EXPECT_TRUE(has(r.out, "evmm demo: all steps ok; powering off through ACPI S5")) << r.out;
}

}  // namespace
}  // namespace evmm::testing
