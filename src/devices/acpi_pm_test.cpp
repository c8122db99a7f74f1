#include "devices/acpi_pm.h"

#include <gtest/gtest.h>

#include "testing/device_test_fakes.h"
#include "memory/layout.h"

namespace evmm {
namespace {

using testing::FakeClock;
using testing::FakeInterruptLine;
using testing::FakeVmStopHandler;

struct AcpiPmTest : ::testing::Test {
  FakeVmStopHandler vm;
  FakeInterruptLine sci;
  FakeClock clock;
  AcpiPm pm{vm, sci, clock};

  uint32_t in(uint64_t off, size_t len) {
    uint8_t b[4] = {};
    pm.read({off, std::span(b, len), 0});
    uint32_t v = 0;
    for (size_t i = 0; i < len; ++i) v |= uint32_t{b[i]} << (8 * i);
    return v;
  }
  void out(uint64_t off, size_t len, uint32_t v) {
    uint8_t b[4];
    for (size_t i = 0; i < 4; ++i) b[i] = static_cast<uint8_t>(v >> (8 * i));
    pm.write({off, std::span<const uint8_t>(b, len), 0});
  }
  uint16_t sts() { return static_cast<uint16_t>(in(0, 2)); }
  void sleep(uint8_t typ) { out(4, 2, AcpiPm::kSlpEn | (typ << AcpiPm::kSlpTypShift)); }
};

TEST_F(AcpiPmTest, ResetState) {
  EXPECT_EQ(sts(), 0);
  EXPECT_EQ(in(2, 2), 0u);
  EXPECT_EQ(in(4, 2), 1u) << "SCI_EN always reads 1";
  EXPECT_FALSE(sci.level());
}

TEST_F(AcpiPmTest, StatusIsWriteOneToClear) {
  pm.raise_status(AcpiPm::kPwrBtnSts | AcpiPm::kRtcSts | AcpiPm::kWakSts | 0x0010);
  EXPECT_EQ(sts(), 0x8500) << "unimplemented BM_STS is not set";
  out(0, 2, 0x0000);
  EXPECT_EQ(sts(), 0x8500);
  out(0, 2, 0x0100);
  EXPECT_EQ(sts(), 0x8400);
  out(1, 1, 0x80);  // a byte write to the high half clears WAK_STS
  EXPECT_EQ(sts(), 0x0400);
  out(0, 2, 0xffff);
  EXPECT_EQ(sts(), 0);
}

TEST_F(AcpiPmTest, SciFollowsStatusAndEnable) {
  pm.raise_status(AcpiPm::kPwrBtnSts);
  EXPECT_FALSE(sci.level()) << "PWRBTN_EN clear";
  out(2, 2, 0x0100);
  EXPECT_EQ(in(2, 2), 0x0100u);
  EXPECT_TRUE(sci.level());
  out(0, 2, 0x0100);
  EXPECT_FALSE(sci.level());
  pm.raise_status(AcpiPm::kWakSts);
  EXPECT_FALSE(sci.level()) << "WAK_STS has no enable and raises no SCI";
  pm.raise_status(AcpiPm::kRtcSts);
  EXPECT_FALSE(sci.level());
  out(2, 2, 0x0500);
  EXPECT_TRUE(sci.level());
  out(2, 2, 0x0000);
  EXPECT_FALSE(sci.level()) << "clearing the enable drops the line too";
  out(2, 2, 0xffff);
  // GBL_EN (bit 5) does not stick: that is how ACPICA learns the platform has no global lock
  // (evglock.c), and Linux then runs without one.
  EXPECT_EQ(in(2, 2), 0x0501u) << "only implemented enables stick";
  EXPECT_EQ(sci.levels(), (std::vector<bool>{true, false, true, false, true}));
}

// RTC_STS is bit 10 of PM1_STS and RTC_EN bit 10 of PM1_EN (ACPI 6.0, Tables 4-16 and 4-17): the
// status is set whatever the enable says, cleared by writing 1, and raises the SCI only while enabled.
TEST_F(AcpiPmTest, RtcStatusAndEnable) {
  EXPECT_EQ(AcpiPm::kRtcSts, 1u << 10);
  pm.raise_status(AcpiPm::kRtcSts);
  EXPECT_EQ(sts(), 0x0400);
  EXPECT_FALSE(sci.level());
  out(3, 1, 0x04);  // RTC_EN through the enable register's high byte
  EXPECT_EQ(in(2, 2), 0x0400u);
  EXPECT_TRUE(sci.level());
  out(0, 2, 0xfbff);  // every other status bit: RTC_STS stays
  EXPECT_EQ(sts(), 0x0400);
  EXPECT_TRUE(sci.level());
  out(1, 1, 0x04);  // write 1 to clear, byte-wide
  EXPECT_EQ(sts(), 0);
  EXPECT_FALSE(sci.level());
  pm.raise_status(AcpiPm::kRtcSts);
  EXPECT_TRUE(sci.level()) << "a new alarm with RTC_EN already set";
  out(2, 2, 0);
  EXPECT_FALSE(sci.level());
  EXPECT_EQ(sts(), 0x0400) << "disabling keeps the status";
}

TEST_F(AcpiPmTest, DwordReadCoversStatusAndEnable) {
  pm.raise_status(AcpiPm::kRtcSts);
  out(2, 2, 0x0001);
  EXPECT_EQ(in(0, 4), 0x0001'0400u);
}

TEST_F(AcpiPmTest, S5PowersOff) {
  sleep(platform::kSlpTypS5);
  ASSERT_EQ(vm.stops().size(), 1u);
  EXPECT_EQ(vm.stops()[0], std::make_pair(StopReason::PowerOff, 0));
  EXPECT_EQ(pm.stats().power_offs, 1u);
}

TEST_F(AcpiPmTest, S5ByByteWriteToHighHalf) {
  out(5, 1, (AcpiPm::kSlpEn | (platform::kSlpTypS5 << AcpiPm::kSlpTypShift)) >> 8);
  EXPECT_EQ(vm.stops().size(), 1u);
}

TEST_F(AcpiPmTest, OtherSleepTypesAreNotPowerOff) {
  sleep(platform::kSlpTypS3);
  EXPECT_TRUE(vm.stops().empty());
  EXPECT_EQ(pm.stats().unsupported_sleeps, 1u);
  std::vector<uint8_t> seen;
  pm.set_sleep_handler([&](uint8_t t) { seen.push_back(t); });
  sleep(platform::kSlpTypS3);
  sleep(5);
  EXPECT_EQ(seen, (std::vector<uint8_t>{platform::kSlpTypS3, 5}));
  EXPECT_TRUE(vm.stops().empty());
  EXPECT_EQ(pm.stats().unsupported_sleeps, 1u);
}

TEST_F(AcpiPmTest, SleepTypeIsStoredAndSleepEnableReadsZero) {
  out(4, 2, 3u << AcpiPm::kSlpTypShift);
  EXPECT_EQ(in(4, 2), (3u << AcpiPm::kSlpTypShift) | 1u);
  EXPECT_TRUE(vm.stops().empty()) << "no SLP_EN, no sleep";
  out(5, 1, AcpiPm::kSlpEn >> 8);  // SLP_EN with SLP_TYP 0 in the same byte: S5
  EXPECT_EQ(vm.stops().size(), 1u);
  EXPECT_EQ(in(4, 2) & AcpiPm::kSlpEn, 0u);
}

TEST_F(AcpiPmTest, TimerRunsAt3579545HzAndWrapsAt24Bits) {
  EXPECT_EQ(in(8, 4), 0u);
  clock.advance(kNsPerSec);
  EXPECT_EQ(in(8, 4), 3'579'545u);
  clock.advance(1'000'000);  // 1 ms
  EXPECT_EQ(in(8, 4), 3'579'545u + 3'579u);
  clock.advance(4 * kNsPerSec - 1'000'000);  // 5 s in all
  EXPECT_EQ(in(8, 4), (5u * 3'579'545u) & 0xffffffu);
  EXPECT_EQ(in(8, 4) >> 24, 0u);
  // A long-running VM: no overflow in the tick arithmetic after a day.
  clock.advance(86'400 * kNsPerSec);
  EXPECT_EQ(in(8, 4), ((86'405ull * 3'579'545ull) & 0xffffffu));
}

TEST_F(AcpiPmTest, TimerCarrySetsTmrStsAndSci) {
  out(2, 2, AcpiPm::kTmrSts);
  clock.advance(2 * kNsPerSec);  // 7.16M ticks: bit 23 (8.39M) not yet reached
  pm.tick();
  EXPECT_FALSE(sci.level());
  EXPECT_EQ(sts() & AcpiPm::kTmrSts, 0);
  clock.advance(kNsPerSec / 2);
  pm.tick();
  EXPECT_TRUE(sci.level());
  EXPECT_EQ(sts() & AcpiPm::kTmrSts, AcpiPm::kTmrSts);
  out(0, 2, AcpiPm::kTmrSts);
  EXPECT_FALSE(sci.level());
}

TEST_F(AcpiPmTest, BadAccessesAreIgnoredAndCounted) {
  uint8_t eight[8];
  pm.read({0, eight, 0});
  EXPECT_EQ(eight[0], 0xff);
  EXPECT_EQ(in(6, 1), 0xffu) << "offsets 6-7 are no register";
  EXPECT_EQ(in(4, 4), 0xffffffffu) << "a dword at 4 reaches into the gap";
  clock.advance(kNsPerSec);
  out(8, 4, 0);  // the timer is read-only
  EXPECT_EQ(in(8, 4), 3'579'545u);
  out(4, 4, AcpiPm::kSlpEn);
  EXPECT_TRUE(vm.stops().empty());
  uint8_t three[3] = {};
  pm.read({0, three, 0});
  EXPECT_EQ(pm.stats().bad_accesses, 6u);
}

}  // namespace
}  // namespace evmm
