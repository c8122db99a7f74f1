#include "devices/rtc.h"

#include <gtest/gtest.h>

#include "devices/device_test_fakes.h"

namespace evmm {
namespace {

using testing::FakeClock;
using testing::FakeInterruptLine;

// 2026-11-21 23:59:59 UTC, a Saturday (computed independently with Python's calendar.timegm).
constexpr int64_t kSat = 1795305599;

struct RtcTest : ::testing::Test {
  FakeInterruptLine irq;
  FakeClock clock;
  std::unique_ptr<Rtc> rtc;

  void SetUp() override { start_at(kSat * kNsPerSec); }
  void start_at(int64_t realtime_ns) {
    clock.set_realtime(realtime_ns);
    rtc = std::make_unique<Rtc>(irq, clock);
  }
  uint8_t get(uint8_t index) {
    rtc->write(0, std::span<const uint8_t>(&index, 1));
    uint8_t v = 0;
    rtc->read(1, std::span(&v, 1));
    return v;
  }
  void set(uint8_t index, uint8_t value) {
    rtc->write(0, std::span<const uint8_t>(&index, 1));
    rtc->write(1, std::span<const uint8_t>(&value, 1));
  }
  std::vector<uint8_t> clock_regs() {
    return {get(0), get(2), get(4), get(6), get(7), get(8), get(9), get(0x32)};
  }
};

TEST_F(RtcTest, DefaultModeIsBcd24Hour) {
  EXPECT_EQ(get(0x0a), 0x26);
  EXPECT_EQ(get(0x0b), 0x02);
  EXPECT_EQ(get(0x0d), 0x80);
  EXPECT_EQ(clock_regs(), (std::vector<uint8_t>{0x59, 0x59, 0x23, 0x07, 0x21, 0x11, 0x26, 0x20}));
}

TEST_F(RtcTest, BinaryMode) {
  set(0x0b, 0x06);
  EXPECT_EQ(clock_regs(), (std::vector<uint8_t>{59, 59, 23, 7, 21, 11, 26, 20}));
}

TEST_F(RtcTest, TwelveHourModeBcdAndBinary) {
  set(0x0b, 0x00);  // BCD, 12-hour
  EXPECT_EQ(get(4), 0x80 | 0x11) << "11 PM";
  set(0x0b, 0x04);  // binary, 12-hour
  EXPECT_EQ(get(4), 0x80 | 11);
  clock.advance(kNsPerSec);  // midnight: 12 AM
  EXPECT_EQ(get(4), 12);
  set(0x0b, 0x00);
  EXPECT_EQ(get(4), 0x12);
  EXPECT_EQ(clock_regs(), (std::vector<uint8_t>{0x00, 0x00, 0x12, 0x01, 0x22, 0x11, 0x26, 0x20}))
      << "rolled over into Sunday 2026-11-22";
  clock.advance(12 * 3600 * kNsPerSec);  // noon: 12 PM
  EXPECT_EQ(get(4), 0x80 | 0x12);
}

TEST_F(RtcTest, YearAndCenturyRollOver) {
  start_at((1798761599 /* 2026-12-31 23:59:59 */ + 1) * kNsPerSec);
  EXPECT_EQ(clock_regs(), (std::vector<uint8_t>{0x00, 0x00, 0x00, 0x06, 0x01, 0x01, 0x27, 0x20}));
  start_at(946684800 * kNsPerSec);  // 2000-01-01, a Saturday
  EXPECT_EQ(clock_regs(), (std::vector<uint8_t>{0x00, 0x00, 0x00, 0x07, 0x01, 0x01, 0x00, 0x20}));
}

TEST_F(RtcTest, UipDuringLast244MicrosecondsOfTheSecond) {
  start_at(kSat * kNsPerSec + 999'755'999);
  EXPECT_EQ(get(0x0a) & 0x80, 0);
  clock.advance(1);
  EXPECT_EQ(get(0x0a) & 0x80, 0x80);
  clock.advance(243'999);
  EXPECT_EQ(get(0x0a) & 0x80, 0x80);
  clock.advance(1);
  EXPECT_EQ(get(0x0a) & 0x80, 0) << "seconds rolled over";
  EXPECT_EQ(get(0), 0x00);
  set(0x0a, 0xff);
  EXPECT_EQ(get(0x0a), 0x7f) << "UIP is read-only; divider and rate bits are writable";
}

TEST_F(RtcTest, SetFreezesThenTimeRunsFromWhatGuestWrote) {
  clock.advance(kNsPerSec / 3);
  set(0x0b, 0x82);  // SET, BCD, 24-hour
  set(0x00, 0x06);
  set(0x02, 0x05);
  set(0x04, 0x04);
  set(0x07, 0x03);
  set(0x08, 0x02);
  set(0x09, 0x01);
  clock.advance(5 * kNsPerSec);
  EXPECT_EQ(get(0), 0x06) << "frozen while SET";
  EXPECT_EQ(get(0x0a) & 0x80, 0);
  set(0x0b, 0x02);
  // 2001-02-03 04:05:06, a Saturday; the host clock is untouched.
  EXPECT_EQ(clock_regs(), (std::vector<uint8_t>{0x06, 0x05, 0x04, 0x07, 0x03, 0x02, 0x01, 0x20}));
  clock.advance(700'000'000);
  EXPECT_EQ(get(0), 0x06) << "the written second starts when SET is cleared";
  clock.advance(61 * kNsPerSec - 700'000'000);
  EXPECT_EQ(clock_regs(), (std::vector<uint8_t>{0x07, 0x06, 0x04, 0x07, 0x03, 0x02, 0x01, 0x20}));
  EXPECT_EQ(clock.realtime_ns(), (kSat + 66) * kNsPerSec + kNsPerSec / 3);
}

TEST_F(RtcTest, SetClearsUie) {
  set(0x0b, 0x12);
  set(0x0b, 0x92);
  EXPECT_EQ(get(0x0b), 0x82);
}

TEST_F(RtcTest, WritesWhileRunningKeepTheClockGoing) {
  set(0x0b, 0x06);  // binary
  set(0x04, 7);     // 07:59:59
  EXPECT_EQ(get(4), 7);
  EXPECT_EQ(get(2), 59);
  clock.advance(kNsPerSec);
  EXPECT_EQ(get(4), 8);
  EXPECT_EQ(get(2), 0);
  EXPECT_EQ(get(7), 21);
}

TEST_F(RtcTest, TwelveHourWrites) {
  set(0x0b, 0x84);  // SET, binary, 12-hour
  set(0x04, 0x80 | 12);  // 12 PM
  set(0x0b, 0x06);       // running, binary, 24-hour
  EXPECT_EQ(get(4), 12);
  set(0x0b, 0x80);       // SET, BCD, 12-hour
  set(0x04, 0x12);       // 12 AM
  set(0x0b, 0x06);
  EXPECT_EQ(get(4), 0);
}

TEST_F(RtcTest, OutOfRangeFieldsAreClampedAndCounted) {
  set(0x0b, 0x86);
  set(0x08, 13);
  set(0x00, 75);
  EXPECT_EQ(get(0x08), 12);
  EXPECT_EQ(get(0x00), 59);
  EXPECT_EQ(rtc->stats().invalid_time_writes, 2u);
}

TEST_F(RtcTest, TimesOutsideTheCenturiesKeptAreClampedToTheirEnds) {
  set(0x32, 0x00);  // 0026-11-21: before 1900
  EXPECT_EQ(clock_regs(), (std::vector<uint8_t>{0x00, 0x00, 0x00, 0x02, 0x01, 0x01, 0x00, 0x19}));
  set(0x32, 0x99);  // 9900-01-01: after 2199
  EXPECT_EQ(clock_regs(), (std::vector<uint8_t>{0x59, 0x59, 0x23, 0x03, 0x31, 0x12, 0x99, 0x21}));
  EXPECT_EQ(rtc->stats().invalid_time_writes, 2u);
  clock.advance(kNsPerSec);  // and the clock runs on from there
  EXPECT_EQ(get(0x32), 0x22);
}

TEST_F(RtcTest, RegisterCReportsElapsedUpdatesAndClearsOnRead) {
  set(0x0a, 0x20);  // no periodic rate
  EXPECT_EQ(get(0x0c), 0x00);
  clock.advance(kNsPerSec / 2);
  EXPECT_EQ(get(0x0c), 0x00) << "same second";
  clock.advance(kNsPerSec / 4);
  EXPECT_EQ(get(0x0c), 0x00) << "same second";
  clock.advance(kNsPerSec / 4);
  EXPECT_EQ(get(0x0c), 0x30) << "the seconds rolled over into 00:00:00, the alarm's reset value: UF and AF, "
                                "no IRQF without UIE or AIE";
  EXPECT_EQ(get(0x0c), 0x00) << "read clears";
  EXPECT_TRUE(irq.levels().empty());
}

TEST_F(RtcTest, UpdateInterruptThroughTick) {
  set(0x0a, 0x20);
  set(0x01, 0x30);  // keep the alarm away from midnight
  set(0x0b, 0x12);  // UIE
  rtc->tick();
  EXPECT_FALSE(irq.level());
  clock.advance(kNsPerSec);
  rtc->tick();
  EXPECT_TRUE(irq.level());
  EXPECT_EQ(get(0x0c), 0x90);
  EXPECT_FALSE(irq.level());
  EXPECT_EQ(rtc->stats().interrupts, 1u);
}

TEST_F(RtcTest, AlarmInterrupt) {
  set(0x0a, 0x20);
  set(0x01, 0x01);  // alarm at 00:00:01, BCD
  set(0x03, 0x00);
  set(0x05, 0x00);
  set(0x0b, 0x22);  // AIE
  clock.advance(kNsPerSec);  // 00:00:00
  rtc->tick();
  EXPECT_FALSE(irq.level());
  EXPECT_EQ(get(0x0c), 0x10);
  clock.advance(kNsPerSec);  // 00:00:01
  rtc->tick();
  EXPECT_TRUE(irq.level());
  EXPECT_EQ(get(0x0c), 0xb0);
  EXPECT_FALSE(irq.level());
}

TEST_F(RtcTest, AlarmIn12HourMode) {
  set(0x0b, 0x00);  // BCD, 12-hour
  set(0x01, 0x00);
  set(0x03, 0x00);
  set(0x05, 0x12);  // 12 AM: midnight
  clock.advance(kNsPerSec);
  EXPECT_EQ(get(0x0c) & 0x20, 0x20);
  set(0x05, 0x80 | 0x01);  // 1 PM
  clock.advance(3600 * kNsPerSec);  // 01:00:00 AM
  EXPECT_EQ(get(0x0c) & 0x20, 0);
  clock.advance(12 * 3600 * kNsPerSec);  // 01:00:00 PM
  EXPECT_EQ(get(0x0c) & 0x20, 0x20);
}

TEST_F(RtcTest, AlarmFoundInsideALongGapAndDontCare) {
  set(0x0a, 0x20);
  set(0x01, 0x30);
  set(0x03, 0xc0);  // any minute
  set(0x05, 0xff);  // any hour
  clock.advance(20 * kNsPerSec);  // 00:00:19: no :30 seen yet
  EXPECT_EQ(get(0x0c), 0x10);
  clock.advance(3600 * kNsPerSec);  // passes 00:00:30 and every :30 after
  EXPECT_EQ(get(0x0c), 0x30);
  set(0x05, 0x25);  // hour 25 never matches
  clock.advance(3 * 86400 * kNsPerSec);
  EXPECT_EQ(get(0x0c), 0x10);
}

TEST_F(RtcTest, PeriodicFlag) {
  EXPECT_EQ(get(0x0c), 0x00);
  clock.advance(500'000);  // half a 1024 Hz period
  EXPECT_EQ(get(0x0c) & 0x40, 0);
  clock.advance(500'000);
  EXPECT_EQ(get(0x0c) & 0x40, 0x40);
  set(0x0b, 0x42);  // PIE
  clock.advance(1'000'000);
  rtc->tick();
  EXPECT_TRUE(irq.level());
  EXPECT_EQ(get(0x0c) & 0xc0, 0xc0);
}

TEST_F(RtcTest, SlowestRateSelectsAre256And128Hz) {
  set(0x0a, 0x21);
  get(0x0c);
  clock.advance(3'906'000);
  EXPECT_EQ(get(0x0c) & 0x40, 0) << "just short of 1/256 s";
  clock.advance(250);
  EXPECT_EQ(get(0x0c) & 0x40, 0x40);
  set(0x0a, 0x22);  // now half-way through a 1/128 s period
  clock.advance(3'906'000);
  EXPECT_EQ(get(0x0c) & 0x40, 0) << "just short of 2/128 s";
  clock.advance(250);
  EXPECT_EQ(get(0x0c) & 0x40, 0x40);
}

TEST_F(RtcTest, NvramAndIndexNmiBit) {
  set(0x40, 0xab);
  EXPECT_EQ(get(0x40), 0xab);
  set(0x80 | 0x41, 0xcd);  // NMI-mask bit set: still index 0x41
  EXPECT_EQ(get(0x41), 0xcd);
  set(0x7f, 0x11);
  EXPECT_EQ(get(0x7f), 0x11);
  uint8_t v = 0;
  rtc->read(0, std::span(&v, 1));
  EXPECT_EQ(v, 0xff) << "index port is write-only";
}

TEST_F(RtcTest, SetCmosRejectsClockRegisters) {
  EXPECT_TRUE(rtc->set_cmos(0x0e, 1));
  EXPECT_EQ(get(0x0e), 1);
  EXPECT_EQ(rtc->set_cmos(0x00, 1).error().code(), EINVAL);
  EXPECT_EQ(rtc->set_cmos(0x0c, 1).error().code(), EINVAL);
  EXPECT_EQ(rtc->set_cmos(0x32, 1).error().code(), EINVAL);
  EXPECT_EQ(rtc->set_cmos(0x80, 1).error().code(), EINVAL);
}

TEST_F(RtcTest, MemorySizeBytes) {
  constexpr uint64_t MiB = 1 << 20, GiB = 1ull << 30;
  rtc->set_memory_size(3 * GiB, 1 * GiB);
  EXPECT_EQ(get(0x15) | get(0x16) << 8, 640);
  EXPECT_EQ(get(0x17) | get(0x18) << 8, 65535) << "capped";
  EXPECT_EQ(get(0x30) | get(0x31) << 8, 65535);
  EXPECT_EQ(get(0x34) | get(0x35) << 8, (3 * GiB - 16 * MiB) / (64 << 10));
  EXPECT_EQ(get(0x5b) | get(0x5c) << 8 | get(0x5d) << 16, GiB / (64 << 10));
  rtc->set_memory_size(32 * MiB, 0);
  EXPECT_EQ(get(0x17) | get(0x18) << 8, 31 * 1024);
  EXPECT_EQ(get(0x30) | get(0x31) << 8, 31 * 1024);
  EXPECT_EQ(get(0x34) | get(0x35) << 8, 256);
  EXPECT_EQ(get(0x5b) | get(0x5c) << 8 | get(0x5d) << 16, 0);
}

TEST_F(RtcTest, BadAccessesAreIgnoredAndCounted) {
  set(0x40, 0x12);
  uint8_t two[2] = {0x40, 0x99};
  rtc->write(0, two);
  rtc->read(0, two);
  EXPECT_EQ(two[0], 0xff);
  EXPECT_EQ(two[1], 0xff);
  set(0x0c, 0xff);
  set(0x0d, 0x00);
  EXPECT_EQ(get(0x0d), 0x80);
  EXPECT_EQ(get(0x40), 0x12);
  EXPECT_EQ(rtc->stats().bad_accesses, 4u);
}

}  // namespace
}  // namespace evmm
