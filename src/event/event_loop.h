// An epoll event loop with subscribers in the style of rust-vmm's event-manager: a subscriber has
// only init() and process(), and registers its own fds through EventOps, each with a token of its
// choosing that comes back with every event of that fd (so a subscriber of many fds does not search).
#pragma once

#include <sys/epoll.h>

#include <atomic>
#include <cstdint>
#include <functional>
#include <map>
#include <memory>
#include <mutex>
#include <thread>

#include "base/eventfd.h"
#include "base/fd.h"
#include "base/result.h"

namespace evmm {

// One ready fd, as process() receives it: events are EPOLL* bits, token is what add() was given.
struct Event {
  int fd;
  uint32_t events;
  uint64_t token;
};

// What a subscriber may do to its own fds, from init() or process(). events are EPOLL* bits.
class EventOps {
 public:
  virtual ~EventOps() = default;
  // EEXIST when the subscriber already has `fd`; `token` is the subscriber's own (an index, say).
  virtual Result<void> add(int fd, uint32_t events, uint64_t token) = 0;
  // Changes the events watched; the token stays the one add() was given.
  virtual Result<void> modify(int fd, uint32_t events) = 0;
  virtual Result<void> remove(int fd) = 0;
};

// The EventOps a subscriber gives a part of itself (a device inside its transport): the part's
// tokens are its own, and `tag` is set on them on the way in so the subscriber can tell them apart.
class TaggedEventOps final : public EventOps {
 public:
  TaggedEventOps(EventOps& inner, uint64_t tag) : inner_(inner), tag_(tag) {}
  Result<void> add(int fd, uint32_t events, uint64_t token) override { return inner_.add(fd, events, token | tag_); }
  Result<void> modify(int fd, uint32_t events) override { return inner_.modify(fd, events); }
  Result<void> remove(int fd) override { return inner_.remove(fd); }

 private:
  EventOps& inner_;
  const uint64_t tag_;
};

class EventSubscriber {
 public:
  virtual ~EventSubscriber() = default;
  // Called once, when the subscriber joins a loop: register fds here.
  virtual void init(EventOps& ops) = 0;
  // Called on the loop's thread for each ready fd of this subscriber.
  virtual void process(const Event& event, EventOps& ops) = 0;
};

class EventLoop {
 public:
  using SubscriberId = uint64_t;

  static Result<std::unique_ptr<EventLoop>> create();
  // Stops and joins the thread, if one runs.
  ~EventLoop();
  EventLoop(const EventLoop&) = delete;
  EventLoop& operator=(const EventLoop&) = delete;

  // Adds a subscriber and runs its init() in the caller's thread, never concurrently with process().
  // Thread-safe; callable from process().
  Result<SubscriberId> add(std::shared_ptr<EventSubscriber> sub);
  // Removes a subscriber and all its fds. Once it returns, the subscriber's process() is not running
  // and is never called again (from process() itself: after the current call). Thread-safe. Do not
  // call it while holding a lock that the subscriber's process() takes.
  Result<void> remove(SubscriberId id);

  // Dispatches one batch of ready events in the calling thread; for a loop without its own thread.
  // Returns the number of subscriber events dispatched. timeout_ms as epoll_wait.
  Result<int> run_once(int timeout_ms);
  // Runs the loop on its own thread, with every signal blocked there, until stop(). setup, if given,
  // runs first on that thread (a seccomp filter, say); if it fails, the thread ends and start()
  // returns its error.
  using ThreadSetup = std::function<Result<void>()>;
  Result<void> start(ThreadSetup setup = {});
  // Wakes and joins the loop thread. Idempotent; not callable from process().
  void stop();

  size_t subscriber_count() const;

 private:
  class Ops;
  struct Registration {
    SubscriberId owner;
    int fd;
    uint64_t token;  // the subscriber's
  };
  struct Subscriber {
    std::shared_ptr<EventSubscriber> sub;
    std::map<int, uint64_t> fds;  // fd -> epoll key
  };

  EventLoop(UniqueFd epoll, EventFd wake) : epoll_(std::move(epoll)), wake_(std::move(wake)) {}
  // The dispatch lock is held by whichever thread is in init()/process(); it is not re-taken there.
  std::unique_lock<std::mutex> lock_unless_dispatching();
  Result<void> add_fd(SubscriberId owner, int fd, uint32_t events, uint64_t token);
  Result<void> modify_fd(SubscriberId owner, int fd, uint32_t events);
  Result<void> remove_fd(SubscriberId owner, int fd);

  UniqueFd epoll_;
  EventFd wake_;
  std::atomic<bool> stopping_{false};
  std::thread thread_;

  mutable std::mutex mu_;
  std::atomic<std::thread::id> dispatcher_{};
  // Threads waiting in add()/remove(): the loop lets them in before its next batch, or a busy fd
  // could starve them (std::mutex is not fair).
  std::atomic<int> waiting_{0};
  SubscriberId next_id_ = 1;
  // Epoll keys are never reused, so a stale event from an epoll batch cannot reach a newer registration.
  uint64_t next_key_ = 1;  // 0 is the wake eventfd
  std::map<SubscriberId, Subscriber> subs_;
  std::map<uint64_t, Registration> keys_;
};

}  // namespace evmm
