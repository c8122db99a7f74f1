#include "devices/i8042.h"

#include <gtest/gtest.h>

#include "testing/device_test_fakes.h"

namespace evmm {
namespace {

using testing::FakeVmStopHandler;

struct I8042Test : ::testing::Test {
  FakeVmStopHandler vm;
  I8042 kbc{vm};

  uint8_t status() { return in(4); }
  uint8_t in(uint64_t off) {
    uint8_t v = 0;
    kbc.read({off, std::span(&v, 1), 0});
    return v;
  }
  void cmd(uint8_t c) { kbc.write({4, std::span<const uint8_t>(&c, 1), 0}); }
  void data(uint8_t d) { kbc.write({0, std::span<const uint8_t>(&d, 1), 0}); }
  // What Linux's i8042_command does for a one-byte reply: wait for OBF, then read 0x60.
  int reply() {
    if (!(status() & 0x01)) return -1;
    return in(0);
  }
};

TEST_F(I8042Test, IdleStatus) {
  uint8_t s = status();
  EXPECT_NE(s, 0xff) << "Linux takes 0xff as no controller";
  EXPECT_EQ(s & 0x03, 0) << "OBF and IBF clear";
  EXPECT_EQ(s & 0x04, 0x04) << "system flag: POST passed";
}

TEST_F(I8042Test, SelfTestsAnswer) {
  cmd(0xaa);
  EXPECT_EQ(status() & 0x08, 0x08) << "last write was a command";
  EXPECT_EQ(reply(), 0x55);
  EXPECT_EQ(status() & 0x01, 0) << "reading 0x60 empties the output buffer";
  cmd(0xab);
  EXPECT_EQ(reply(), 0x00);
  cmd(0xa9);
  EXPECT_EQ(reply(), 0xff);
}

TEST_F(I8042Test, CommandByteReadWrite) {
  cmd(0x20);
  EXPECT_EQ(reply(), 0x65);
  cmd(0x60);
  data(0x47);
  EXPECT_EQ(status() & 0x08, 0) << "last write went to the data port";
  cmd(0x20);
  EXPECT_EQ(reply(), 0x47 | 0x20) << "AUXDIS stays set with no AUX port";
  cmd(0xad);
  cmd(0x20);
  EXPECT_EQ(reply() & 0x10, 0x10);
  cmd(0xae);
  cmd(0x20);
  EXPECT_EQ(reply() & 0x10, 0);
  EXPECT_TRUE(vm.stops().empty());
}

// The order of Linux's i8042_check_aux: AUX loop, AUX test, then the AUXDIS toggle.
TEST_F(I8042Test, AuxPortIsAbsentToLinuxProbe) {
  cmd(0xd3);
  data(0x5a);
  uint8_t s = status();
  EXPECT_EQ(s & 0x01, 0x01);
  EXPECT_EQ(s & 0x20, 0) << "looped byte must not look like AUX data";
  EXPECT_EQ(in(0), 0x5a);
  cmd(0xa7);
  cmd(0x20);
  EXPECT_EQ(reply() & 0x20, 0x20);
  cmd(0xa8);
  cmd(0x20);
  EXPECT_EQ(reply() & 0x20, 0x20) << "enabling a missing AUX port must not clear AUXDIS";
  cmd(0xd4);
  data(0xf4);
  EXPECT_EQ(status() & 0x01, 0);
  EXPECT_EQ(kbc.stats().dropped_bytes, 1u);
}

TEST_F(I8042Test, KeyboardOutputBufferWrite) {
  cmd(0xd2);
  data(0x1c);
  EXPECT_EQ(reply(), 0x1c);
}

TEST_F(I8042Test, BytesForTheAbsentKeyboardAreDropped) {
  data(0xff);  // keyboard reset
  EXPECT_EQ(status() & 0x01, 0);
  EXPECT_EQ(kbc.stats().dropped_bytes, 1u);
}

TEST_F(I8042Test, PulseResetLine) {
  cmd(0xff);  // pulses nothing
  EXPECT_TRUE(vm.stops().empty());
  cmd(0xfe);
  ASSERT_EQ(vm.stops().size(), 1u);
  EXPECT_EQ(vm.stops()[0], std::make_pair(StopReason::Reset, 0));
  EXPECT_EQ(kbc.stats().resets, 1u);
}

TEST_F(I8042Test, OutputPortResetBit) {
  cmd(0xd0);
  EXPECT_EQ(reply(), 0x03);
  cmd(0xdd);
  cmd(0xd0);
  EXPECT_EQ(reply(), 0x01) << "A20 off";
  cmd(0xd1);
  data(0x03);
  EXPECT_TRUE(vm.stops().empty());
  cmd(0xd0);
  EXPECT_EQ(reply(), 0x03);
  cmd(0xd1);
  data(0x02);  // reset line driven low
  ASSERT_EQ(vm.stops().size(), 1u);
  EXPECT_EQ(vm.stops()[0].first, StopReason::Reset);
}

TEST_F(I8042Test, UnknownCommandsAndBadAccessesAreCounted) {
  cmd(0xc5);
  cmd(0x21);
  EXPECT_EQ(kbc.stats().unknown_commands, 2u);
  EXPECT_EQ(status() & 0x01, 0);
  uint8_t two[2] = {0xfe, 0xfe};
  kbc.write({4 - 1, two, 0});
  kbc.write({1, std::span<const uint8_t>(two, 1), 0});
  kbc.read({0, two, 0});
  EXPECT_EQ(two[0], 0xff);
  EXPECT_EQ(in(1), 0xff);
  EXPECT_EQ(kbc.stats().bad_accesses, 4u);
  EXPECT_TRUE(vm.stops().empty());
}

}  // namespace
}  // namespace evmm
