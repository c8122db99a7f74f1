#include "event/eventfd_interrupt_line.h"

#include <gtest/gtest.h>

namespace evmm {
namespace {

// The fake: the line's eventfds with no KVM behind them. Reading the trigger fd counts the
// interrupts KVM would have raised; writing the resample fd plays the guest's EOI.
struct Fixture {
  explicit Fixture(EventFdInterruptLine::Mode mode) : line(*EventFdInterruptLine::create_unbound(mode)) {}
  uint64_t raised() { return *line->trigger_fd().consume(); }
  // The guest EOIs: KVM signals the resamplefd and the loop dispatches it.
  void eoi() {
    ASSERT_TRUE(line->resample_fd()->signal());
    ASSERT_EQ(*loop->run_once(1000), 1);
  }
  std::shared_ptr<EventFdInterruptLine> line;
  std::unique_ptr<EventLoop> loop = *EventLoop::create();
};

TEST(EventFdInterruptLineConcurrent, LevelReRaisesAfterEoiWhileAsserted) {
  Fixture f(EventFdInterruptLine::Mode::Level);
  ASSERT_TRUE(f.loop->add(f.line));
  f.line->set_level(true);
  EXPECT_EQ(f.raised(), 1u);
  f.eoi();
  EXPECT_EQ(f.raised(), 1u);  // still asserted: raised again
  f.eoi();
  EXPECT_EQ(f.raised(), 1u);
  f.line->set_level(false);
  EXPECT_EQ(f.raised(), 0u);  // deassert writes nothing
  f.eoi();
  EXPECT_EQ(f.raised(), 0u);  // and stops the re-raising
  f.line->set_level(true);
  EXPECT_EQ(f.raised(), 1u);
  EXPECT_EQ(f.line->failures(), 0u);
}

TEST(EventFdInterruptLineConcurrent, LevelTriggerIsOneShot) {
  Fixture f(EventFdInterruptLine::Mode::Level);
  ASSERT_TRUE(f.loop->add(f.line));
  f.line->trigger();
  EXPECT_EQ(f.raised(), 1u);
  f.eoi();
  EXPECT_EQ(f.raised(), 0u);
}

TEST(EventFdInterruptLineConcurrent, EdgeSignalsOnTriggerAndRisingLevelOnly) {
  Fixture f(EventFdInterruptLine::Mode::Edge);
  EXPECT_EQ(f.line->resample_fd(), nullptr);
  ASSERT_TRUE(f.loop->add(f.line));  // nothing to watch, but harmless
  f.line->trigger();
  f.line->trigger();
  EXPECT_EQ(f.raised(), 2u);
  f.line->set_level(true);
  f.line->set_level(true);
  EXPECT_EQ(f.raised(), 1u);
  f.line->set_level(false);
  EXPECT_EQ(f.raised(), 0u);
  f.line->set_level(true);
  EXPECT_EQ(f.raised(), 1u);
}

}  // namespace
}  // namespace evmm
