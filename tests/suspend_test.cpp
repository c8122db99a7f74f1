// evmm's Suspended MP state, wakeup events and the VMM's decision, and VM pause/resume, with the VMM
// in-process (libevmm) and the testprog guest's `pvsuspend` word (guests/README.md); the VM is built by
// tests/suspend_harness.h.
#include <gtest/gtest.h>
#include <unistd.h>

#include <atomic>
#include <chrono>
#include <csignal>
#include <thread>

#include "tests/kvm_test_util.h"
#include "tests/suspend_harness.h"

namespace evmm::testing {
namespace {

using namespace std::chrono_literals;

using suspend::Guest;
using suspend::wait_for;

TEST(SuspendConcurrent, ApiWakeResumesWhereTheGuestStopped) {
  REQUIRE_KVM();
  Guest g;
  ASSERT_EQ(g.boot(guest("testprog.mb.elf"), {.cmdline = "pvsuspend exit=0"}), "");
  Vcpu& v = g.vm->vcpu(0);
  ASSERT_TRUE(wait_for([&] { return v.suspended(); }));
  std::this_thread::sleep_for(100ms);
  EXPECT_TRUE(v.suspended());  // nothing else wakes it
  EXPECT_EQ(v.stats().wakeups.load(), 0u);
  g.vm->wake();
  VmOutcome out;
  std::string serial = g.finish(&out);
  EXPECT_EQ(out.exit_status, 1) << out.message << serial;
  EXPECT_TRUE(has(serial, "pvsuspend: resumed, gsi 0 serial 0")) << serial;
  EXPECT_EQ(v.stats().wakeups.load(), 1u);
  EXPECT_EQ(v.stats().wakeups_resumed.load(), 1u);
}

TEST(SuspendConcurrent, DeviceInterruptThroughAnIrqfdWakesAndIsStillDelivered) {
  REQUIRE_KVM();
  Guest g;
  ASSERT_EQ(g.boot(guest("testprog.mb.elf"), {.cmdline = "pvsuspend exit=0"}), "");
  Vcpu& v = g.vm->vcpu(0);
  ASSERT_TRUE(wait_for([&] { return v.suspended(); }));
  g.raise();
  ASSERT_TRUE(wait_for([&] { return !v.suspended(); }, 10s));
  VmOutcome out;
  std::string serial = g.finish(&out);
  EXPECT_EQ(out.exit_status, 1) << out.message << serial;
  // The wait took nothing from the LAPIC: the interrupt that woke the vCPU reached its handler.
  EXPECT_TRUE(has(serial, "pvsuspend: resumed, gsi 1 serial 0")) << serial;
  EXPECT_EQ(v.stats().wakeups_resumed.load(), 1u);
}

// COM1's receive interrupt is a device interrupt too: bytes typed at a suspended guest wake it, and
// its handler still gets them.
TEST(SuspendConcurrent, SerialInputWakesAndIsStillDelivered) {
  REQUIRE_KVM();
  Guest g;
  ASSERT_EQ(g.boot(guest("testprog.mb.elf"), {.cmdline = "pvsuspend exit=0", .serial_input = true}), "");
  Vcpu& v = g.vm->vcpu(0);
  ASSERT_TRUE(wait_for([&] { return v.suspended(); }));
  std::this_thread::sleep_for(50ms);
  EXPECT_TRUE(v.suspended());
  ASSERT_EQ(::write(g.serial_in.get(), "hi\n", 3), 3);
  ASSERT_TRUE(wait_for([&] { return !v.suspended(); }, 10s));
  VmOutcome out;
  std::string serial = g.finish(&out);
  EXPECT_EQ(out.exit_status, 1) << out.message << serial;
  EXPECT_TRUE(has(serial, "pvsuspend: resumed, gsi 0 serial 3")) << serial;
  EXPECT_EQ(v.stats().wakeups_resumed.load(), 1u);
}

// The VMM keeps the vCPU suspended on the first wakeup: the state is sticky, the pending interrupt
// is suppressed and does not spin the vCPU thread, and on resume it is delivered after all.
TEST(SuspendConcurrent, StaySuspendedIsStickyAndASuppressedSourceDoesNotSpin) {
  REQUIRE_KVM();
  Guest g;
  std::atomic<int> decisions{0};
  auto resume_on_api_wake = [&](Vcpu&, const exit::Wakeup& w) {
    ++decisions;
    return (w.reasons & wake::kApi) ? WakeDecision::Resume : WakeDecision::StaySuspended;
  };
  ASSERT_EQ(g.boot(guest("testprog.mb.elf"), {.cmdline = "pvsuspend exit=0", .wake_handler = resume_on_api_wake}), "");
  Vcpu& v = g.vm->vcpu(0);
  ASSERT_TRUE(wait_for([&] { return v.suspended(); }));
  g.raise();
  ASSERT_TRUE(wait_for([&] { return v.stats().wakeups.load() == 1; }));
  uint64_t sleeps = v.stats().suspend_sleeps.load(), told = g.vm->interrupt_announcer().notifications();
  // More notifications for the same pending vector: each costs a look at the LAPIC, never a Wakeup.
  for (int i = 0; i < 5; ++i) g.vm->interrupt_announcer().notify();
  EXPECT_EQ(g.vm->interrupt_announcer().notifications(), told + 5);  // the suspended vCPU was listening
  std::this_thread::sleep_for(300ms);
  EXPECT_TRUE(v.suspended());
  EXPECT_EQ(v.stats().wakeups.load(), 1u);
  EXPECT_EQ(decisions.load(), 1);
  // Bounded: a few settle rechecks per notification, not a loop (a spinning thread makes thousands).
  EXPECT_LT(v.stats().suspend_sleeps.load() - sleeps, 40u);
  g.vm->wake();
  VmOutcome out;
  std::string serial = g.finish(&out);
  EXPECT_EQ(out.exit_status, 1) << out.message << serial;
  EXPECT_TRUE(has(serial, "pvsuspend: resumed, gsi 1 serial 0")) << serial;
  EXPECT_EQ(decisions.load(), 2);
}

// Exit requests during the wait end it as exit::Request every time, never as a Wakeup, and the vCPU
// stays suspended (seed 004's -EINTR consistency).
TEST(SuspendConcurrent, ExitRequestsInterruptTheWaitWithoutWaking) {
  REQUIRE_KVM();
  Guest g;
  ASSERT_EQ(g.boot(guest("testprog.mb.elf"), {.cmdline = "pvsuspend exit=0"}), "");
  Vcpu& v = g.vm->vcpu(0);
  ASSERT_TRUE(wait_for([&] { return v.suspended(); }));
  uint64_t before = v.stats().request_exits.load();
  auto fd = v.make_exit_fd();
  ASSERT_TRUE(fd);
  for (int i = 0; i < 200; ++i) {
    v.request_exit();
    if (i % 2) {
      ASSERT_TRUE(fd->signal());
    }
    std::this_thread::sleep_for(200us);
  }
  ASSERT_TRUE(wait_for([&] { return v.exit_requests().pending() == 0; }));
  EXPECT_GT(v.stats().request_exits.load(), before);
  EXPECT_EQ(v.stats().wakeups.load(), 0u);
  EXPECT_TRUE(v.suspended());
  // Every request was taken, none twice (the VM's own stop request at the end may not be).
  EXPECT_EQ(v.stats().requests_taken.load(), v.exit_requests().requested());
  g.vm->wake();
  VmOutcome out;
  std::string serial = g.finish(&out);
  EXPECT_EQ(out.exit_status, 1) << out.message << serial;
}

TEST(SuspendConcurrent, MpStatesReadBackThroughKvmAndEvmm) {
  REQUIRE_KVM();
  Guest g;
  ASSERT_EQ(g.boot(guest("testprog.mb.elf"), {.cmdline = "pvsuspend exit=0", .cpus = 2}), "");
  Vcpu& bsp = g.vm->vcpu(0);
  ASSERT_TRUE(wait_for([&] { return bsp.suspended(); }));
  // The BSP is out of KVM_RUN: its state reads without waiting. The AP was never started.
  EXPECT_EQ(*bsp.mp_state(), MpState::Suspended);
  ASSERT_TRUE(g.vm->pause());
  EXPECT_EQ(*g.vm->vcpu(1).mp_state(), MpState::Stopped);
  ASSERT_TRUE(g.vm->resume());
  g.vm->wake();
  VmOutcome out;
  g.finish(&out);
  EXPECT_EQ(out.exit_status, 1) << out.message;
}

// Pause and resume under load on 2 vCPUs: the guest rings the platform doorbell and waits for each
// answer; no answer is lost across the pauses, and the KVM clock does not count the paused time.
TEST(PauseConcurrent, PauseAndResumeUnderLoadLosesNoInterrupt) {
  REQUIRE_KVM();
  Guest g;
  ASSERT_EQ(g.boot(guest("testprog.mb.elf"), {.cmdline = "smp doorbell=pio n=400 exit=0", .cpus = 2}), "");
  std::this_thread::sleep_for(50ms);
  int paused = 0;
  int64_t max_jump_ns = 0;
  for (int i = 0; i < 10; ++i) {
    auto p = g.vm->pause();
    if (!p) break;  // the guest finished already
    ++paused;
    EXPECT_TRUE(g.vm->paused());
    auto c0 = g.vm->vm_fd().get_clock();
    std::this_thread::sleep_for(100ms);
    ASSERT_TRUE(g.vm->resume());
    auto c1 = g.vm->vm_fd().get_clock();
    ASSERT_TRUE(c0 && c1);
    max_jump_ns = std::max<int64_t>(max_jump_ns, int64_t(c1->clock - c0->clock));
    std::this_thread::sleep_for(20ms);
  }
  VmOutcome out;
  std::string serial = g.finish(&out);
  EXPECT_GT(paused, 0);
  EXPECT_EQ(out.exit_status, 1) << out.message << serial;
  EXPECT_TRUE(has(serial, "doorbell: tsc")) << serial;
  EXPECT_TRUE(has(serial, " 400 interrupts")) << serial;
  // 100 ms paused each time; the clock moved by far less than that across the pause.
  EXPECT_LT(max_jump_ns, 50'000'000) << max_jump_ns;
}

TEST(PauseConcurrent, ErrorsAreDistinct) {
  REQUIRE_KVM();
  Guest g;
  ASSERT_EQ(g.boot(guest("testprog.mb.elf"), {.cmdline = "pvsuspend exit=0"}), "");
  EXPECT_EQ(g.vm->resume().error().code(), EINVAL);
  ASSERT_TRUE(g.vm->pause());
  EXPECT_EQ(g.vm->pause().error().code(), EBUSY);
  ASSERT_TRUE(g.vm->resume());
  // A wake only reaches a vCPU that is suspended already; an earlier one would be stale.
  ASSERT_TRUE(wait_for([&] { return g.vm->vcpu(0).suspended(); }));
  g.vm->wake();
  g.finish();
}

}  // namespace
}  // namespace evmm::testing

namespace evmm::testing {
namespace {

// ACPI S3 round trips through the evmm binary: the guest leaves a marker, sleeps, and its real-mode
// waking-vector stub checks the marker and exits with 0x33 (status 103).
TEST(S3Concurrent, RtcAlarmWakesTheGuestAtItsWakingVectorInRealMode) {
  REQUIRE_KVM();
  auto r = boot("testprog.mb.elf", "s3 alarm=2", 2, {});
  EXPECT_EQ(r.exit_status, 103) << r.out << r.err;
  EXPECT_TRUE(has(r.out, "s3: sleeping\n")) << r.out;
  EXPECT_FALSE(has(r.out, "still running")) << r.out;
}

TEST(S3Concurrent, TheWakeButtonSignalWakesTheGuest) {
  REQUIRE_KVM();
  ProcessOptions opts;
  opts.timeout = std::chrono::milliseconds(1500);  // then SIGUSR1: evmm's wake button
  opts.timeout_signal = SIGUSR1;
  auto r = boot("testprog.mb.elf", "s3", 1, {}, opts);
  EXPECT_EQ(r.exit_status, 103) << r.out << r.err;
}

TEST(S3Concurrent, OnSuspendPolicies) {
  REQUIRE_KVM();
  auto exit = boot("testprog.mb.elf", "s3", 1, {"--on-suspend", "exit"});
  EXPECT_EQ(exit.exit_status, 16) << exit.err;
  EXPECT_TRUE(has(exit.err, "guest suspended to ACPI S3")) << exit.err;
  auto ignore = boot("testprog.mb.elf", "s3 exit=0", 1, {"--on-suspend", "ignore"});
  EXPECT_EQ(ignore.exit_status, 1) << ignore.err;
  EXPECT_TRUE(has(ignore.out, "s3: still running")) << ignore.out;
}

}  // namespace
}  // namespace evmm::testing
