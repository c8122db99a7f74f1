#include "devices/rtc.h"

#include <gtest/gtest.h>

#include "devices/acpi_pm.h"
#include "testing/device_test_fakes.h"

namespace evmm {
namespace {

using testing::FakeClock;
using testing::FakeInterruptLine;
using testing::FakeVmStopHandler;

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
  uint8_t get(uint8_t index) { return testing::cmos_get(*rtc, index); }
  void set(uint8_t index, uint8_t value) { testing::cmos_set(*rtc, index, value); }
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

// UIP rises 244 us before the 1984 us update cycle and falls when it ends, with the new second.
TEST_F(RtcTest, UipCoversTheUpdateCycleOnceASecond) {
  constexpr int64_t kWindow = 244'000 + 1'984'000;
  start_at(kSat * kNsPerSec + kNsPerSec - kWindow - 1);
  EXPECT_EQ(get(0x0a) & 0x80, 0);
  EXPECT_EQ(get(0), 0x59);
  clock.advance(1);
  EXPECT_EQ(get(0x0a) & 0x80, 0x80) << "244 us before the cycle";
  clock.advance(244'000);
  EXPECT_EQ(get(0x0a) & 0x80, 0x80) << "in the update cycle";
  clock.advance(1'984'000 - 1);
  EXPECT_EQ(get(0x0a) & 0x80, 0x80) << "the last nanosecond of the cycle";
  EXPECT_EQ(get(0), 0x59);
  clock.advance(1);
  EXPECT_EQ(get(0x0a) & 0x80, 0) << "the cycle ended";
  EXPECT_EQ(get(0), 0x00) << "with the seconds rolled over";
  clock.advance(kNsPerSec / 2);
  EXPECT_EQ(get(0x0a) & 0x80, 0);
  clock.advance(kNsPerSec / 2 - kWindow);
  EXPECT_EQ(get(0x0a) & 0x80, 0x80) << "and again a second later";
  set(0x0a, 0xff);
  EXPECT_EQ(get(0x0a), 0xff) << "divider and rate bits are writable";
  clock.advance(kWindow);
  EXPECT_EQ(get(0x0a), 0x7f) << "UIP is read-only";
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

// Every alarm byte of 0xc0-0xff is "don't care", alone or together (MC146818A, "Alarm").
TEST_F(RtcTest, AlarmDontCareInEachByte) {
  set(0x0a, 0x20);
  for (uint8_t any : {0xc0, 0xd5, 0xff}) {
    set(0x00, 0x59);  // each round from 23:59:59
    set(0x02, 0x59);
    set(0x04, 0x23);
    set(0x01, any);
    set(0x03, any);
    set(0x05, any);
    get(0x0c);
    clock.advance(kNsPerSec);
    EXPECT_EQ(get(0x0c) & 0x20, 0x20) << "every second matches " << int(any);
    set(0x01, 0x30);  // seconds fixed: :30 of any minute of any hour
    clock.advance(kNsPerSec);
    EXPECT_EQ(get(0x0c) & 0x20, 0) << int(any);
    clock.advance(29 * kNsPerSec);
    EXPECT_EQ(get(0x0c) & 0x20, 0x20) << int(any);
    set(0x01, any);  // minutes fixed at one ahead: any second of that minute
    uint8_t minute = get(0x02);
    set(0x03, static_cast<uint8_t>(minute == 0x59 ? 0x00 : (minute & 0x0f) == 9 ? minute + 7 : minute + 1));
    clock.advance(kNsPerSec);
    EXPECT_EQ(get(0x0c) & 0x20, 0) << int(any);
    clock.advance(60 * kNsPerSec);
    EXPECT_EQ(get(0x0c) & 0x20, 0x20) << int(any);
    set(0x03, any);
    set(0x05, 0x25);  // hour 25 never comes, whatever the other bytes say
    clock.advance(kNsPerSec);
    get(0x0c);
    clock.advance(2 * 86400 * kNsPerSec);
    EXPECT_EQ(get(0x0c) & 0x20, 0) << int(any);
  }
}

// Register C's flags do not depend on the enables; IRQF and the IRQ line are exactly
// (PF & PIE) | (AF & AIE) | (UF & UIE) (MC146818A, Register C).
TEST_F(RtcTest, IrqfIsTheEnabledFlags) {
  struct Case {
    uint8_t rate;      // register A
    int64_t advance;   // ns
    uint8_t flags;     // PF AF UF that elapse
  };
  const Case cases[] = {
      {0x2f, kNsPerSec / 2, 0x40},  // 2 Hz, half a second: PF only
      {0x20, kNsPerSec, 0x30},      // no rate, a second with an any-time alarm: UF and AF
      {0x2f, kNsPerSec, 0x70},      // all three
  };
  set(0x01, 0xff);
  set(0x03, 0xff);
  set(0x05, 0xff);
  for (const Case& c : cases) {
    for (uint8_t enables = 0; enables < 8; ++enables) {
      uint8_t b = static_cast<uint8_t>(0x02 | enables << 4);  // PIE AIE UIE are bits 6-4
      set(0x0b, 0x02);
      set(0x0a, c.rate);
      // Start each case on a whole second, where the previous second's flags are cleared.
      clock.advance(kNsPerSec - (clock.realtime_ns() % kNsPerSec));
      get(0x0c);
      irq.clear();
      set(0x0b, b);
      clock.advance(c.advance);
      rtc->tick();
      bool irqf = (c.flags & (enables << 4)) != 0;
      EXPECT_EQ(irq.level(), irqf) << int(c.rate) << " " << int(enables);
      EXPECT_EQ(get(0x0c), c.flags | (irqf ? 0x80 : 0)) << int(c.rate) << " " << int(enables);
      EXPECT_FALSE(irq.level()) << "reading C drops the line";
      EXPECT_EQ(get(0x0c), 0) << "and clears every flag";
    }
  }
}

// Setting an enable while its flag is set raises the line at once; clearing it drops the line.
TEST_F(RtcTest, EnablesGateALatchedFlag) {
  set(0x0a, 0x20);
  set(0x01, 0xff);
  clock.advance(kNsPerSec);
  rtc->tick();
  EXPECT_FALSE(irq.level()) << "AF without AIE";
  set(0x0b, 0x22);
  EXPECT_TRUE(irq.level()) << "AIE with AF latched";
  set(0x0b, 0x02);
  EXPECT_FALSE(irq.level());
  set(0x0b, 0x12);
  EXPECT_TRUE(irq.level()) << "UF was latched too";
  EXPECT_EQ(get(0x0c), 0xb0);
  EXPECT_EQ(irq.levels(), (std::vector<bool>{true, false, true, false}));
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
  rtc->read({0, std::span(&v, 1), 0});
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
  rtc->write({0, two, 0});
  rtc->read({0, two, 0});
  EXPECT_EQ(two[0], 0xff);
  EXPECT_EQ(two[1], 0xff);
  set(0x0c, 0xff);
  set(0x0d, 0x00);
  EXPECT_EQ(get(0x0d), 0x80);
  EXPECT_EQ(get(0x40), 0x12);
  EXPECT_EQ(rtc->stats().bad_accesses, 4u);
}

// ---- what drives the timer: next_event_ns() ----

TEST_F(RtcTest, NoEventWhenNothingIsEnabled) {
  // The reset state has a 1024 Hz rate and an alarm at midnight, but no enable: no timer.
  EXPECT_EQ(rtc->next_event_ns(), std::nullopt);
  set(0x0b, 0x0e);  // SQWE, binary, 24-hour: still no interrupt enable
  EXPECT_EQ(rtc->next_event_ns(), std::nullopt);
}

TEST_F(RtcTest, UpdateEventIsTheNextSecondInHostTime) {
  set(0x0a, 0x20);
  clock.advance(kNsPerSec / 4);
  set(0x01, 0x30);
  set(0x0b, 0x12);  // UIE
  EXPECT_EQ(rtc->next_event_ns(), (kSat + 1) * kNsPerSec);
  // The guest moves its clock: the deadline is still a whole guest second, in host time.
  set(0x0b, 0x92);  // SET clears UIE ...
  set(0x00, 0x10);
  set(0x0b, 0x12);  // ... and leaving SET starts the second afresh
  EXPECT_EQ(rtc->next_event_ns(), (kSat + 1) * kNsPerSec + kNsPerSec / 4);
  clock.set_realtime((kSat + 1) * kNsPerSec + kNsPerSec / 4);
  EXPECT_EQ(rtc->next_event_ns(), std::nullopt) << "IRQF is set: nothing to wait for until C is read";
  EXPECT_TRUE(irq.level()) << "next_event_ns() raised the line as tick() does";
  EXPECT_EQ(get(0x0c), 0x90);
  EXPECT_EQ(rtc->next_event_ns(), (kSat + 2) * kNsPerSec + kNsPerSec / 4);
  set(0x0b, 0x92);
  EXPECT_EQ(rtc->next_event_ns(), std::nullopt) << "SET stops updates";
}

TEST_F(RtcTest, PeriodicEventFollowsTheRate) {
  set(0x0a, 0x2f);  // 2 Hz
  set(0x0b, 0x42);  // PIE
  EXPECT_EQ(rtc->next_event_ns(), kSat * kNsPerSec + kNsPerSec / 2);
  set(0x0a, 0x2d);  // 8 Hz
  EXPECT_EQ(rtc->next_event_ns(), kSat * kNsPerSec + kNsPerSec / 8);
  set(0x0a, 0x2a);  // 64 Hz: 15625000 ns
  clock.advance(15'625'000 - 1);
  EXPECT_EQ(rtc->next_event_ns(), kSat * kNsPerSec + 15'625'000);
  clock.advance(1);
  EXPECT_EQ(rtc->next_event_ns(), std::nullopt);
  EXPECT_EQ(get(0x0c), 0xc0);
  EXPECT_EQ(rtc->next_event_ns(), kSat * kNsPerSec + 2 * 15'625'000);
  set(0x0a, 0x20);
  EXPECT_EQ(rtc->next_event_ns(), std::nullopt) << "PIE with no rate";
}

// 8192 Hz sets PF at its own rate for a polling guest, but the timer wakes at most 1024 times a second.
TEST_F(RtcTest, FastPeriodicRatesAreCappedForTheTimer) {
  set(0x0a, 0x23);  // 8192 Hz
  get(0x0c);
  clock.advance(122'071);  // just past one 8192 Hz period (122070.3 ns)
  EXPECT_EQ(get(0x0c) & 0x40, 0x40);
  set(0x0b, 0x42);
  int64_t now = clock.realtime_ns();
  auto next = rtc->next_event_ns();
  ASSERT_TRUE(next);
  EXPECT_EQ(*next, kSat * kNsPerSec + 976'563) << "the next 1/1024 s, not the next 1/8192 s";
  EXPECT_GE(*next - now, kNsPerSec / Rtc::kMaxTimerHz - 122'071);
  clock.set_realtime(*next);
  EXPECT_EQ(rtc->next_event_ns(), std::nullopt);
  EXPECT_TRUE(irq.level());
  EXPECT_EQ(get(0x0c), 0xc0);
}

TEST_F(RtcTest, AlarmEventIsTheNextMatch) {
  set(0x0b, 0x06);  // binary, 24-hour
  set(0x01, 10);    // 00:00:10, tomorrow (it is 23:59:59)
  set(0x03, 0);
  set(0x05, 0);
  set(0x0b, 0x26);  // AIE
  EXPECT_EQ(rtc->next_event_ns(), (kSat + 11) * kNsPerSec);
  set(0x05, 23);  // 23:00:10: nearly a day ahead
  EXPECT_EQ(rtc->next_event_ns(), (kSat + 11 + 23 * 3600) * kNsPerSec);
  set(0x01, 0xc0);  // 23:00:xx: the next 23:00:00
  set(0x03, 0);
  EXPECT_EQ(rtc->next_event_ns(), (kSat + 1 + 23 * 3600) * kNsPerSec);
  set(0x05, 0xc0);
  set(0x03, 0xc0);
  EXPECT_EQ(rtc->next_event_ns(), (kSat + 1) * kNsPerSec) << "every second";
  set(0x05, 24);
  EXPECT_EQ(rtc->next_event_ns(), std::nullopt) << "hour 24 never comes";
  set(0x05, 0xc0);
  set(0x0b, 0xa6);  // SET, AIE
  EXPECT_EQ(rtc->next_event_ns(), std::nullopt) << "SET stops the update cycle and its alarm";
}

// The line may already be up for another reason; the alarm is still a wake event worth a timer.
TEST_F(RtcTest, AlarmIsScheduledWhileTheLineIsUp) {
  set(0x0a, 0x20);
  set(0x0b, 0x06);
  set(0x01, 5);
  set(0x03, 0);
  set(0x05, 0);
  set(0x0b, 0x36);  // AIE and UIE
  clock.advance(kNsPerSec);  // 00:00:00: UF raises the line
  EXPECT_EQ(rtc->next_event_ns(), (kSat + 6) * kNsPerSec);
  EXPECT_TRUE(irq.level());
  clock.set_realtime((kSat + 6) * kNsPerSec);
  EXPECT_EQ(rtc->take_alarms(), 0u);
  EXPECT_EQ(rtc->next_event_ns(), std::nullopt) << "AF is set: no more alarms until C is read";
  EXPECT_EQ(rtc->take_alarms(), 1u);
  EXPECT_EQ(get(0x0c), 0xb0);
}

// ---- the alarm as an ACPI wake event ----

struct RtcWakeTest : RtcTest {
  FakeVmStopHandler vm;
  FakeInterruptLine sci;
  std::unique_ptr<AcpiPm> pm;
  void SetUp() override {
    RtcTest::SetUp();
    pm = std::make_unique<AcpiPm>(vm, sci, clock);
    rtc->set_acpi_pm(pm.get());
    set(0x0a, 0x20);
    set(0x0b, 0x06);
    set(0x01, 1);  // 00:00:01
    set(0x03, 0);
    set(0x05, 0);
  }
  uint16_t pm1_sts() {
    uint8_t b[2] = {};
    pm->read({AcpiPm::kStsOffset, b, 0});
    return static_cast<uint16_t>(b[0] | b[1] << 8);
  }
  void pm1_write(uint64_t offset, uint16_t v) {
    uint8_t b[2] = {static_cast<uint8_t>(v), static_cast<uint8_t>(v >> 8)};
    pm->write({offset, b, 0});
  }
};

TEST_F(RtcWakeTest, AlarmWithAieSetsRtcStsWhateverRtcEn) {
  set(0x0b, 0x26);
  clock.advance(kNsPerSec);
  rtc->tick();
  EXPECT_EQ(pm1_sts() & AcpiPm::kRtcSts, 0) << "00:00:00 is no alarm";
  clock.advance(kNsPerSec);
  rtc->tick();
  EXPECT_TRUE(irq.level());
  EXPECT_EQ(pm1_sts(), AcpiPm::kRtcSts) << "RTC_STS is bit 10";
  EXPECT_FALSE(sci.level()) << "RTC_EN is clear: status, but no SCI";
  EXPECT_EQ(rtc->take_alarms(), 1u);
  EXPECT_EQ(rtc->take_alarms(), 0u);
  EXPECT_EQ(rtc->stats().alarms, 1u);
  pm1_write(AcpiPm::kEnOffset, AcpiPm::kRtcSts);  // RTC_EN, bit 10 of PM1_EN
  EXPECT_TRUE(sci.level());
  pm1_write(AcpiPm::kStsOffset, AcpiPm::kRtcSts);  // write 1 to clear
  EXPECT_FALSE(sci.level());
  EXPECT_EQ(pm1_sts(), 0);
  EXPECT_EQ(get(0x0c), 0xb0) << "the RTC's own flags are separate";
}

TEST_F(RtcWakeTest, AlarmNoticedByAGuestReadOfC) {
  set(0x0b, 0x26);
  pm1_write(AcpiPm::kEnOffset, AcpiPm::kRtcSts);
  clock.advance(2 * kNsPerSec);
  EXPECT_EQ(get(0x0c), 0xb0);
  EXPECT_EQ(pm1_sts(), AcpiPm::kRtcSts);
  EXPECT_TRUE(sci.level());
  EXPECT_EQ(rtc->take_alarms(), 1u);
}

TEST_F(RtcWakeTest, AlarmWithoutAieIsNoWakeEvent) {
  clock.advance(2 * kNsPerSec);
  EXPECT_EQ(get(0x0c), 0x30);
  EXPECT_EQ(pm1_sts(), 0);
  EXPECT_EQ(rtc->take_alarms(), 0u);
  EXPECT_FALSE(rtc->alarms_pending());
}

TEST_F(RtcTest, ChangeHookRunsAfterDataWritesAndReadsOfC) {
  int calls = 0;
  rtc->set_change_hook([&] { ++calls; });
  uint8_t index = 0x0b, v = 0x02;
  rtc->write({0, std::span<const uint8_t>(&index, 1), 0});
  EXPECT_EQ(calls, 0) << "index writes move nothing";
  rtc->write({1, std::span<const uint8_t>(&v, 1), 0});
  EXPECT_EQ(calls, 1);
  get(0x00);
  get(0x0a);
  EXPECT_EQ(calls, 1) << "reads other than C move nothing";
  get(0x0c);
  EXPECT_EQ(calls, 2);
  set(0x01, 0x30);
  EXPECT_EQ(calls, 3);
}

}  // namespace
}  // namespace evmm
