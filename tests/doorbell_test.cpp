// The event plane end to end: a guest rings a doorbell (PIO or MMIO), an ioeventfd catches the write,
// a device on an event loop wakes on that eventfd and answers through an irqfd on GSI 11, and the
// guest's interrupt handler counts the answer. The test is the VMM (libevmm in-process); see
// tests/doorbell_harness.h. Counts are asserted, never times.
#include <gtest/gtest.h>

#include "tests/doorbell_harness.h"
#include "tests/kvm_test_util.h"

namespace evmm::testing {
namespace {

constexpr unsigned kTrips = 200;

void expect_round_trips(const doorbell::RunResult& r, const char* mode) {
  ASSERT_TRUE(r.error.empty()) << r.error;
  // testprog ends with exit=0 by default: debug-exit status (0 << 1) | 1.
  EXPECT_EQ(r.outcome.kind, VmOutcome::Kind::DebugExit) << r.outcome.message << "\nserial:\n" << r.serial;
  EXPECT_EQ(r.outcome.exit_status, 1) << r.outcome.message;
  ASSERT_TRUE(r.guest) << "no doorbell report in the serial output:\n" << r.serial;
  EXPECT_EQ(r.guest->mode, mode);
  EXPECT_EQ(r.guest->n, kTrips);
  // One ring, one eventfd count, one irqfd write, one interrupt: nothing lost, nothing doubled.
  EXPECT_EQ(r.guest->irqs, kTrips);
  EXPECT_EQ(r.rings, kTrips);
  EXPECT_EQ(r.wakeups, kTrips);
  EXPECT_EQ(r.triggers, kTrips);
}

TEST(DoorbellConcurrent, PioRoundTripsThroughKernelIoeventfdAndIrqfd) {
  REQUIRE_KVM();
  auto r = doorbell::run(guest("testprog.mb.elf"), {IoSpace::Pio, doorbell::Exit::Kernel, kTrips});
  expect_round_trips(r, "pio");
  EXPECT_TRUE(r.doorbell_in_kernel);
}

TEST(DoorbellConcurrent, MmioRoundTripsThroughKernelIoeventfdAndIrqfd) {
  REQUIRE_KVM();
  auto r = doorbell::run(guest("testprog.mb.elf"), {IoSpace::Mmio, doorbell::Exit::Kernel, kTrips});
  expect_round_trips(r, "mmio");
  EXPECT_TRUE(r.doorbell_in_kernel);
  // The doorbell never reached the MMIO bus: neither dispatched in userspace nor dropped there.
  EXPECT_EQ(r.stats.unclaimed_mmio, 0u);
}

// A datamatch companion on the doorbell's address makes a group KVM cannot hold, so the registry keeps
// the doorbell in userspace: every ring is a userspace
// exit that IoEventRegistry::dispatch_write turns into the same eventfd signal.
TEST(DoorbellConcurrent, PioRoundTripsThroughUserspaceDispatch) {
  REQUIRE_KVM();
  auto r = doorbell::run(guest("testprog.mb.elf"), {IoSpace::Pio, doorbell::Exit::Userspace, kTrips});
  expect_round_trips(r, "pio");
  EXPECT_FALSE(r.doorbell_in_kernel);
  EXPECT_GE(r.stats.pio_exits, kTrips);
}

TEST(DoorbellConcurrent, MmioRoundTripsThroughUserspaceDispatch) {
  REQUIRE_KVM();
  auto r = doorbell::run(guest("testprog.mb.elf"), {IoSpace::Mmio, doorbell::Exit::Userspace, kTrips});
  expect_round_trips(r, "mmio");
  EXPECT_FALSE(r.doorbell_in_kernel);
  EXPECT_GE(r.stats.mmio_exits, kTrips);
}

// The ring from CPL3 (testprog `ring3`, runtime rt_run_user): the instruction runs natively on hosts
// that emulate CPL0, and the guest returns to CPL0 afterwards to report. Every ring reaches the device
// exactly once, whichever path caught it, and the userspace path costs one exit per ring.
void ring3_both_paths(IoSpace space, const char* mode) {
  constexpr unsigned n = 1000;
  doorbell::RunResult r[2];
  for (auto exit : {doorbell::Exit::Kernel, doorbell::Exit::Userspace}) {
    auto& x = r[exit == doorbell::Exit::Userspace];
    doorbell::Options o{space, exit, n};
    o.cpl3 = true;
    x = doorbell::run(guest("testprog.mb.elf"), o);
    ASSERT_TRUE(x.error.empty()) << x.error;
    EXPECT_EQ(x.outcome.exit_status, 1) << x.outcome.message << "\nserial:\n" << x.serial;
    ASSERT_TRUE(x.guest) << "no ring3 report in the serial output:\n" << x.serial;
    EXPECT_TRUE(x.guest->cpl3);
    EXPECT_EQ(x.guest->mode, mode);
    EXPECT_EQ(x.guest->n, n);
    EXPECT_EQ(x.rings, n);
    EXPECT_EQ(x.doorbell_in_kernel, exit == doorbell::Exit::Kernel);
    EXPECT_GT(x.tsc_khz, 0u);
  }
  uint64_t kernel_exits = space == IoSpace::Pio ? r[0].stats.pio_exits : r[0].stats.mmio_exits;
  uint64_t user_exits = space == IoSpace::Pio ? r[1].stats.pio_exits : r[1].stats.mmio_exits;
  EXPECT_GE(user_exits, kernel_exits + n);
}

TEST(DoorbellConcurrent, PioRingsFromCpl3ReachTheDeviceByEitherPath) {
  REQUIRE_KVM();
  ring3_both_paths(IoSpace::Pio, "pio");
}

TEST(DoorbellConcurrent, MmioRingsFromCpl3ReachTheDeviceByEitherPath) {
  REQUIRE_KVM();
  ring3_both_paths(IoSpace::Mmio, "mmio");
}

}  // namespace
}  // namespace evmm::testing

namespace evmm::testing {
namespace {

// The evmm binary's own doorbell device: ioeventfd in, irqfd out, no userspace exit per ring.
TEST(DoorbellConcurrent, PlatformDeviceAnswersThroughTheCli) {
  REQUIRE_KVM();
  for (const char* mode : {"pio", "mmio"}) {
    auto r = boot("testprog.mb.elf", fmt::format("doorbell={} n=100 exit=0", mode), 1, {"--stats"});
    EXPECT_EQ(r.exit_status, 1) << r.out << r.err;
    EXPECT_NE(r.out.find(fmt::format("doorbell: {} 100 round trips", mode)), std::string::npos) << r.out;
    EXPECT_NE(r.out.find("100 interrupts"), std::string::npos) << r.out;
    // The rings were caught in the kernel: no MMIO exits at all for the MMIO doorbell.
    if (std::string(mode) == "mmio") {
      EXPECT_NE(r.err.find("mmio_exits=0 "), std::string::npos) << r.err;
    }
  }
}

}  // namespace
}  // namespace evmm::testing
