#include "devices/pv_control.h"

#include <gtest/gtest.h>

#include "memory/layout.h"

namespace evmm {
namespace {

TEST(PvControl, OnlyAByteOfSuspendSuspends) {
  int calls = 0;
  PvControl dev([&] { ++calls; });
  const uint8_t suspend[] = {platform::kPvSuspend}, other[] = {7}, wide[] = {platform::kPvSuspend, 0};
  dev.write(0, other);
  dev.write(0, wide);
  EXPECT_EQ(calls, 0);
  EXPECT_EQ(dev.bad_accesses(), 2u);
  dev.write(0, suspend);
  EXPECT_EQ(calls, 1);
  EXPECT_EQ(dev.suspends(), 1u);
  uint8_t r[2] = {0xff, 0xff};
  dev.read(0, r);
  EXPECT_EQ(r[0], 0);
  EXPECT_EQ(r[1], 0);
}

}  // namespace
}  // namespace evmm
