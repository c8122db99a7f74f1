#include "devices/debug_exit.h"

#include <gtest/gtest.h>

#include <vector>

#include "testing/device_test_fakes.h"

namespace evmm {
namespace {

using testing::FakeVmStopHandler;

TEST(DebugExit, WriteWidthsCarryLittleEndianValue) {
  FakeVmStopHandler vm;
  DebugExit dev(vm);
  uint8_t b1[1] = {0x10};
  uint8_t b2[2] = {0x34, 0x12};
  uint8_t b4[4] = {0x78, 0x56, 0x34, 0x12};
  dev.write({0, b1, 0});
  dev.write({0, b2, 0});
  dev.write({0, b4, 0});
  auto stops = vm.stops();
  ASSERT_EQ(stops.size(), 3u);
  EXPECT_EQ(stops[0], std::make_pair(StopReason::DebugExit, 0x21));
  EXPECT_EQ(stops[1], std::make_pair(StopReason::DebugExit, 0x2469));
  EXPECT_EQ(stops[2], std::make_pair(StopReason::DebugExit, 0x2468acf1));
  EXPECT_EQ(dev.stats().exits, 3u);
}

TEST(DebugExit, ZeroGivesStatusOneAndTopBitIsShiftedOut) {
  FakeVmStopHandler vm;
  DebugExit dev(vm);
  uint8_t zero[1] = {0};
  uint8_t top[4] = {0xff, 0xff, 0xff, 0xff};
  dev.write({0, zero, 0});
  dev.write({0, top, 0});
  auto stops = vm.stops();
  ASSERT_EQ(stops.size(), 2u);
  EXPECT_EQ(stops[0].second, 1);
  EXPECT_EQ(static_cast<uint32_t>(stops[1].second), 0xffffffffu);
}

TEST(DebugExit, BadWritesAreIgnoredAndReadsAreAllOnes) {
  FakeVmStopHandler vm;
  DebugExit dev(vm);
  uint8_t b8[8] = {1, 0, 0, 0, 0, 0, 0, 0};
  uint8_t b3[3] = {1, 0, 0};
  dev.write({0, b8, 0});
  dev.write({0, b3, 0});
  dev.write({1, std::span<const uint8_t>(b8, 1), 0});
  EXPECT_TRUE(vm.stops().empty());
  EXPECT_EQ(dev.stats().bad_accesses, 3u);
  uint8_t r[4] = {};
  dev.read({0, r, 0});
  EXPECT_EQ(r[0] & r[1] & r[2] & r[3], 0xff);
}

}  // namespace
}  // namespace evmm
