#include "vcpu/pause_gate.h"

#include <gtest/gtest.h>

#include <atomic>
#include <thread>

namespace evmm {
namespace {

using namespace std::chrono_literals;

TEST(PauseGateConcurrent, OpenGateNeverParks) {
  PauseGate g(1);
  EXPECT_FALSE(g.park_if_closed());
  EXPECT_FALSE(g.closed());
}

TEST(PauseGateConcurrent, CloseParksEveryMemberUntilOpen) {
  PauseGate g(2);
  g.close();
  std::atomic<int> through{0};
  std::thread a([&] { if (g.park_if_closed()) ++through; });
  std::thread b([&] { if (g.park_if_closed()) ++through; });
  ASSERT_TRUE(g.wait_parked(5s));
  EXPECT_EQ(through.load(), 0);
  g.open();
  a.join();
  b.join();
  EXPECT_EQ(through.load(), 2);
}

TEST(PauseGateConcurrent, AMemberThatLeftIsNotWaitedFor) {
  PauseGate g(2);
  g.close();
  EXPECT_FALSE(g.wait_parked(10ms));  // nobody parked yet
  g.leave();
  std::thread a([&] { g.park_if_closed(); });
  EXPECT_TRUE(g.wait_parked(5s));
  g.open();
  a.join();
}

}  // namespace
}  // namespace evmm
