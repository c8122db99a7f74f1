#include "event/event_loop.h"

#include <gtest/gtest.h>

#include <atomic>
#include <thread>
#include <vector>

namespace evmm {
namespace {

// Watches one eventfd; counts and drains its events.
class CountingSubscriber : public EventSubscriber {
 public:
  static constexpr uint64_t kToken = 0x5eed;
  explicit CountingSubscriber(uint32_t events = EPOLLIN) : fd(*EventFd::create()), events_(events) {}
  void init(EventOps& ops) override {
    ++inits;
    init_result = ops.add(fd.fd(), events_, kToken).has_value();
  }
  void process(const Event& ev, EventOps& ops) override {
    EXPECT_EQ(ev.fd, fd.fd());
    EXPECT_EQ(ev.token, kToken);
    last_events = ev.events;
    in_process = true;
    (void)fd.consume();
    ++calls;
    if (on_process) on_process(ops);
    in_process = false;
  }
  EventFd fd;
  std::atomic<int> inits{0}, calls{0};
  std::atomic<bool> in_process{false};
  bool init_result = false;
  uint32_t last_events = 0;
  std::function<void(EventOps&)> on_process;

 private:
  uint32_t events_;
};

TEST(EventLoopConcurrent, InitRegistersAndProcessGetsEvents) {
  auto loop = *EventLoop::create();
  auto sub = std::make_shared<CountingSubscriber>();
  auto id = loop->add(sub);
  ASSERT_TRUE(id);
  EXPECT_EQ(sub->inits, 1);
  EXPECT_TRUE(sub->init_result);
  EXPECT_EQ(*loop->run_once(0), 0);
  ASSERT_TRUE(sub->fd.signal());
  EXPECT_EQ(*loop->run_once(1000), 1);
  EXPECT_EQ(sub->calls, 1);
  EXPECT_TRUE(sub->last_events & EPOLLIN);
}

TEST(EventLoopConcurrent, AddingAnFdTwiceIsRefused) {
  auto loop = *EventLoop::create();
  auto sub = std::make_shared<CountingSubscriber>();
  bool second = true;
  sub->on_process = [&](EventOps& ops) { second = ops.add(sub->fd.fd(), EPOLLIN, 1).has_value(); };
  ASSERT_TRUE(loop->add(sub));
  ASSERT_TRUE(sub->fd.signal());
  ASSERT_TRUE(loop->run_once(1000));
  EXPECT_FALSE(second);
}

// Each fd's token comes back with its events, so a subscriber of many fds need not search for one.
class TokenSubscriber : public EventSubscriber {
 public:
  TokenSubscriber() {
    for (int i = 0; i < 3; ++i) fds.push_back(*EventFd::create());
  }
  void init(EventOps& ops) override {
    for (size_t i = 0; i < fds.size(); ++i) EXPECT_TRUE(ops.add(fds[i].fd(), EPOLLIN, 100 + i));
  }
  void process(const Event& ev, EventOps&) override {
    ASSERT_GE(ev.token, 100u);
    ASSERT_LT(ev.token - 100, fds.size());
    EXPECT_EQ(ev.fd, fds[ev.token - 100].fd());
    (void)fds[ev.token - 100].consume();
    seen.push_back(ev.token);
  }
  std::vector<EventFd> fds;
  std::vector<uint64_t> seen;
};

TEST(EventLoop, EachFdComesBackWithItsToken) {
  auto loop = *EventLoop::create();
  auto sub = std::make_shared<TokenSubscriber>();
  ASSERT_TRUE(loop->add(sub));
  ASSERT_TRUE(sub->fds[2].signal());
  ASSERT_EQ(*loop->run_once(1000), 1);
  ASSERT_TRUE(sub->fds[0].signal());
  ASSERT_EQ(*loop->run_once(1000), 1);
  EXPECT_EQ(sub->seen, (std::vector<uint64_t>{102, 100}));
}

TEST(EventLoopConcurrent, ModifyChangesTheWatchedEvents) {
  auto loop = *EventLoop::create();
  auto sub = std::make_shared<CountingSubscriber>();
  // An eventfd is always writable: after switching to EPOLLOUT the loop reports it at once.
  sub->on_process = [&](EventOps& ops) { EXPECT_TRUE(ops.modify(sub->fd.fd(), EPOLLOUT)); };
  ASSERT_TRUE(loop->add(sub));
  ASSERT_TRUE(sub->fd.signal());
  ASSERT_EQ(*loop->run_once(1000), 1);
  EXPECT_TRUE(sub->last_events & EPOLLIN);
  sub->on_process = nullptr;
  ASSERT_EQ(*loop->run_once(1000), 1);
  EXPECT_TRUE(sub->last_events & EPOLLOUT);
  EXPECT_FALSE(sub->last_events & EPOLLIN);
}

TEST(EventLoopConcurrent, SubscriberRemovesItsOwnFd) {
  auto loop = *EventLoop::create();
  auto sub = std::make_shared<CountingSubscriber>();
  sub->on_process = [&](EventOps& ops) { EXPECT_TRUE(ops.remove(sub->fd.fd())); };
  ASSERT_TRUE(loop->add(sub));
  ASSERT_TRUE(sub->fd.signal());
  ASSERT_EQ(*loop->run_once(1000), 1);
  ASSERT_TRUE(sub->fd.signal());
  EXPECT_EQ(*loop->run_once(0), 0);
  EXPECT_EQ(sub->calls, 1);
}

TEST(EventLoopConcurrent, RemovedSubscriberIsNotCalledAndUnknownIdIsAnError) {
  auto loop = *EventLoop::create();
  auto sub = std::make_shared<CountingSubscriber>();
  auto id = *loop->add(sub);
  ASSERT_TRUE(sub->fd.signal());
  ASSERT_TRUE(loop->remove(id));
  EXPECT_EQ(*loop->run_once(0), 0);
  EXPECT_EQ(sub->calls, 0);
  EXPECT_EQ(loop->subscriber_count(), 0u);
  auto again = loop->remove(id);
  ASSERT_FALSE(again);
  EXPECT_EQ(again.error().code(), ENOENT);
}

TEST(EventLoopConcurrent, SubscriberMayRemoveItselfFromProcess) {
  auto loop = *EventLoop::create();
  auto sub = std::make_shared<CountingSubscriber>();
  EventLoop::SubscriberId id = 0;
  sub->on_process = [&](EventOps&) { EXPECT_TRUE(loop->remove(id)); };
  id = *loop->add(sub);
  ASSERT_TRUE(sub->fd.signal());
  ASSERT_EQ(*loop->run_once(1000), 1);
  ASSERT_TRUE(sub->fd.signal());
  EXPECT_EQ(*loop->run_once(0), 0);
  EXPECT_EQ(sub->calls, 1);
}

TEST(EventLoopConcurrent, StartAndStopRunTheThread) {
  auto loop = *EventLoop::create();
  auto sub = std::make_shared<CountingSubscriber>();
  ASSERT_TRUE(loop->add(sub));
  ASSERT_TRUE(loop->start());
  EXPECT_FALSE(loop->start());
  ASSERT_TRUE(sub->fd.signal());
  while (sub->calls == 0) std::this_thread::yield();
  loop->stop();
  loop->stop();  // idempotent
  ASSERT_TRUE(sub->fd.signal());
  EXPECT_EQ(sub->calls, 1);  // stopped: nothing dispatches
}

// The guarantee devices rely on: after remove() returns on another thread, process() is not running
// and is never entered again, even with events still flowing.
TEST(EventLoopConcurrent, RemoveFromAnotherThreadWhileEventsFlow) {
  auto loop = *EventLoop::create();
  ASSERT_TRUE(loop->start());
  for (int round = 0; round < 20; ++round) {
    auto sub = std::make_shared<CountingSubscriber>();
    std::atomic<bool> removed{false};
    std::atomic<int> after_remove{0};
    sub->on_process = [&](EventOps&) {
      if (removed) ++after_remove;
    };
    auto id = *loop->add(sub);
    std::atomic<bool> done{false};
    std::thread writer([&] {
      while (!done) {
        (void)sub->fd.signal();
        ::usleep(20);
      }
    });
    while (sub->calls < 3) std::this_thread::yield();
    ASSERT_TRUE(loop->remove(id));
    EXPECT_FALSE(sub->in_process);
    removed = true;
    int calls = sub->calls;
    // A sentinel processed after the removal proves the loop has dispatched since, writer still going.
    auto sentinel = std::make_shared<CountingSubscriber>();
    auto sid = *loop->add(sentinel);
    ASSERT_TRUE(sentinel->fd.signal());
    while (sentinel->calls == 0) std::this_thread::yield();
    done = true;
    writer.join();
    EXPECT_EQ(sub->calls, calls);
    EXPECT_EQ(after_remove, 0);
    ASSERT_TRUE(loop->remove(sid));
  }
  loop->stop();
}

}  // namespace
}  // namespace evmm
