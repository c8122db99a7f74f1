// The RTC's timer on a real event loop and the host's clock: these tests wait for real time, so
// they keep to short periods, plus one second for each alarm.
#include "devices/rtc_timer.h"

#include <gtest/gtest.h>

#include <chrono>
#include <condition_variable>
#include <thread>

#include "devices/acpi_pm.h"
#include "testing/device_test_fakes.h"

namespace evmm {
namespace {

using namespace std::chrono_literals;
using testing::FakeInterruptLine;
using testing::FakeVmStopHandler;

struct RtcTimerTest : ::testing::Test {
  SystemClock clock;
  FakeInterruptLine irq, sci;
  FakeVmStopHandler vm;
  AcpiPm pm{vm, sci, clock};
  std::shared_ptr<Rtc> rtc = std::make_shared<Rtc>(irq, clock);
  std::unique_ptr<EventLoop> loop;
  std::shared_ptr<RtcTimer> timer;

  void SetUp() override {
    rtc->set_acpi_pm(&pm);
    auto l = EventLoop::create();
    ASSERT_TRUE(l) << l.error().message();
    loop = std::move(*l);
    auto t = RtcTimer::create(rtc);
    ASSERT_TRUE(t) << t.error().message();
    timer = *t;
    ASSERT_TRUE(loop->add(timer));
  }
  void TearDown() override { loop->stop(); }

  uint8_t get(uint8_t index) { return testing::cmos_get(*rtc, index); }
  void set(uint8_t index, uint8_t value) { testing::cmos_set(*rtc, index, value); }
  int run(int timeout_ms) {
    auto n = loop->run_once(timeout_ms);
    EXPECT_TRUE(n) << n.error().message();
    return n ? *n : 0;
  }
  // An alarm exactly one second from now: leaving SET starts the written second afresh.
  void alarm_in_one_second() {
    set(0x0a, 0x20);
    set(0x0b, 0x86);  // SET, binary, 24-hour
    set(0x00, 5);
    set(0x02, 0);
    set(0x04, 0);
    set(0x01, 6);
    set(0x03, 0);
    set(0x05, 0);
    get(0x0c);
    set(0x0b, 0x26);  // running, AIE
  }
};
// The suite name ends in Concurrent: ctest labels its tests "concurrency" (src/CMakeLists.txt).
using RtcTimerConcurrent = RtcTimerTest;

TEST_F(RtcTimerConcurrent, AnIdleRtcArmsNothing) {
  EXPECT_EQ(timer->deadline(), std::nullopt) << "the reset state enables no interrupt";
  EXPECT_EQ(run(50), 0);
  set(0x0a, 0x23);  // the fastest rate, but no PIE
  EXPECT_EQ(timer->deadline(), std::nullopt);
  EXPECT_EQ(run(20), 0);
  EXPECT_EQ(timer->stats().arms, 0u);
  EXPECT_EQ(timer->stats().wakeups, 0u);
}

// On a loaded host a period may pass between two of the test's accesses; the access then raises the
// line itself and nothing is armed, so each wait below happens only while the line is still down.
TEST_F(RtcTimerConcurrent, PeriodicInterruptFiresAndWaitsForC) {
  set(0x0a, 0x2c);  // 16 Hz
  get(0x0c);
  set(0x0b, 0x42);  // PIE
  if (!irq.level()) {
    ASSERT_TRUE(timer->deadline());
    EXPECT_EQ(run(500), 1);
  }
  EXPECT_TRUE(irq.level()) << "the interrupt came without the guest polling";
  EXPECT_EQ(timer->deadline(), std::nullopt) << "IRQF is set: no timer until C is read";
  EXPECT_EQ(run(30), 0) << "and so no spinning";
  EXPECT_EQ(get(0x0c) & 0xc0, 0xc0);
  if (!irq.level()) {
    ASSERT_TRUE(timer->deadline()) << "reading C re-armed the timer";
    EXPECT_EQ(run(500), 1);
  }
  EXPECT_TRUE(irq.level());
  set(0x0b, 0x02);
  EXPECT_FALSE(irq.level());
  get(0x0c);
  EXPECT_EQ(timer->deadline(), std::nullopt) << "PIE cleared: disarmed";
  EXPECT_GE(timer->stats().wakeups, 1u);
}

TEST_F(RtcTimerConcurrent, FastRatesWakeTheHostAtMost1024TimesASecond) {
  set(0x0a, 0x23);  // 8192 Hz
  set(0x0b, 0x42);
  int interrupts = 0;
  auto start = std::chrono::steady_clock::now();
  while (std::chrono::steady_clock::now() - start < 200ms) {
    run(10);
    if (irq.level()) {  // a guest that services every interrupt at once
      ++interrupts;
      EXPECT_EQ(get(0x0c) & 0xc0, 0xc0);
    }
  }
  auto ms = std::chrono::duration_cast<std::chrono::milliseconds>(std::chrono::steady_clock::now() - start).count();
  EXPECT_LE(timer->stats().wakeups, static_cast<uint64_t>(ms * Rtc::kMaxTimerHz / 1000 + 2));
  EXPECT_GE(interrupts, 10) << "it does fire";
}

TEST_F(RtcTimerConcurrent, AlarmRunsTheHandlerOnTheLoopThread) {
  std::mutex mu;
  std::condition_variable cv;
  int calls = 0;
  std::thread::id where;
  timer->set_alarm_handler([&] {
    std::lock_guard lock(mu);
    ++calls;
    where = std::this_thread::get_id();
    cv.notify_all();
  });
  ASSERT_TRUE(loop->start());
  alarm_in_one_second();
  {
    std::unique_lock lock(mu);
    ASSERT_TRUE(cv.wait_for(lock, 3s, [&] { return calls > 0; })) << "no alarm within 3 s";
    EXPECT_NE(where, std::this_thread::get_id());
  }
  EXPECT_TRUE(irq.level());
  uint8_t sts[2] = {};
  pm.read({AcpiPm::kStsOffset, sts, 0});
  EXPECT_EQ(sts[1] & 0x04, 0x04) << "RTC_STS was set before the handler ran";
  EXPECT_EQ(get(0x0c), 0xb0);
  std::this_thread::sleep_for(50ms);
  loop->stop();  // before the handler's captures go away
  EXPECT_EQ(calls, 1);
}

// The guest reads C before the timer fires: the alarm is noticed on the guest's thread, and the
// handler still runs, on the loop.
TEST_F(RtcTimerConcurrent, AlarmNoticedByTheGuestStillReachesTheHandler) {
  int calls = 0;
  timer->set_alarm_handler([&] { ++calls; });
  alarm_in_one_second();
  std::this_thread::sleep_for(1100ms);
  EXPECT_EQ(get(0x0c), 0xb0);
  EXPECT_EQ(calls, 0);
  EXPECT_GE(run(100), 1);
  EXPECT_EQ(calls, 1);
  EXPECT_EQ(run(20), 0) << "one wake-up per alarm";
  EXPECT_EQ(calls, 1);
}

}  // namespace
}  // namespace evmm
