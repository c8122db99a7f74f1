#include "devices/pv_control.h"

#include <gtest/gtest.h>

#include "memory/layout.h"

namespace evmm {
namespace {

TEST(PvControl, OnlyAByteOfSuspendSuspends) {
  int calls = 0;
  uint32_t caller = 0;
  PvControl dev([&](uint32_t vcpu) {
    ++calls;
    caller = vcpu;
  });
  const uint8_t suspend[] = {platform::kPvSuspend}, other[] = {7}, wide[] = {platform::kPvSuspend, 0};
  dev.write({0, other, 0});
  dev.write({0, wide, 0});
  EXPECT_EQ(calls, 0);
  EXPECT_EQ(dev.bad_accesses(), 2u);
  dev.write({0, suspend, 3});
  EXPECT_EQ(calls, 1);
  EXPECT_EQ(caller, 3u);  // the vCPU that wrote is the one to suspend
  EXPECT_EQ(dev.suspends(), 1u);
  uint8_t r[2] = {0xff, 0xff};
  dev.read({0, r, 0});
  EXPECT_EQ(r[0], 0);
  EXPECT_EQ(r[1], 0);
}

}  // namespace
}  // namespace evmm
