#include "event/event_loop.h"

#include <pthread.h>
#include <signal.h>

#include <future>
#include <vector>

#include "base/log.h"

namespace evmm {

class EventLoop::Ops final : public EventOps {
 public:
  Ops(EventLoop& loop, SubscriberId id) : loop_(loop), id_(id) {}
  Result<void> add(int fd, uint32_t events, uint64_t token) override { return loop_.add_fd(id_, fd, events, token); }
  Result<void> modify(int fd, uint32_t events) override { return loop_.modify_fd(id_, fd, events); }
  Result<void> remove(int fd) override { return loop_.remove_fd(id_, fd); }

 private:
  EventLoop& loop_;
  SubscriberId id_;
};

Result<std::unique_ptr<EventLoop>> EventLoop::create() {
  int fd = ::epoll_create1(EPOLL_CLOEXEC);
  if (fd < 0) return errno_error("epoll_create1");
  UniqueFd epoll(fd);
  auto wake = TRY(EventFd::create());
  epoll_event ev{};
  ev.events = EPOLLIN;
  ev.data.u64 = 0;
  if (::epoll_ctl(epoll.get(), EPOLL_CTL_ADD, wake.fd(), &ev) < 0) return errno_error("epoll_ctl add wake eventfd");
  return std::unique_ptr<EventLoop>(new EventLoop(std::move(epoll), std::move(wake)));
}

EventLoop::~EventLoop() { stop(); }

std::unique_lock<std::mutex> EventLoop::lock_unless_dispatching() {
  if (dispatcher_.load() == std::this_thread::get_id()) return {};
  waiting_.fetch_add(1);
  std::unique_lock<std::mutex> lock(mu_);
  waiting_.fetch_sub(1);
  return lock;
}

size_t EventLoop::subscriber_count() const {
  if (dispatcher_.load() == std::this_thread::get_id()) return subs_.size();
  std::lock_guard<std::mutex> lock(mu_);
  return subs_.size();
}

Result<EventLoop::SubscriberId> EventLoop::add(std::shared_ptr<EventSubscriber> sub) {
  if (!sub) return make_error(EINVAL, "event loop: null subscriber");
  auto lock = lock_unless_dispatching();
  SubscriberId id = next_id_++;
  subs_[id] = Subscriber{sub, {}};
  // init() runs under the dispatch lock so that no event of its fds is processed before it returns.
  auto prev = dispatcher_.exchange(std::this_thread::get_id());
  Ops ops(*this, id);
  sub->init(ops);
  dispatcher_.store(prev);
  return id;
}

Result<void> EventLoop::remove(SubscriberId id) {
  auto lock = lock_unless_dispatching();
  auto it = subs_.find(id);
  if (it == subs_.end()) return make_error(ENOENT, "event loop: no subscriber {}", id);
  Result<void> result;
  for (const auto& [fd, key] : it->second.fds) {
    keys_.erase(key);
    if (::epoll_ctl(epoll_.get(), EPOLL_CTL_DEL, fd, nullptr) < 0 && result) result = errno_error("epoll_ctl del fd {}", fd);
  }
  subs_.erase(it);
  return result;
}

Result<void> EventLoop::add_fd(SubscriberId owner, int fd, uint32_t events, uint64_t token) {
  auto sub = subs_.find(owner);
  if (sub == subs_.end()) return make_error(ENOENT, "event loop: no subscriber {}", owner);
  auto& s = sub->second;
  if (s.fds.count(fd)) return make_error(EEXIST, "event loop: fd {} is already registered", fd);
  uint64_t key = next_key_++;
  epoll_event ev{};
  ev.events = events;
  ev.data.u64 = key;
  if (::epoll_ctl(epoll_.get(), EPOLL_CTL_ADD, fd, &ev) < 0) return errno_error("epoll_ctl add fd {}", fd);
  s.fds[fd] = key;
  keys_[key] = Registration{owner, fd, token};
  return {};
}

Result<void> EventLoop::modify_fd(SubscriberId owner, int fd, uint32_t events) {
  auto sub = subs_.find(owner);
  if (sub == subs_.end()) return make_error(ENOENT, "event loop: no subscriber {}", owner);
  auto& s = sub->second;
  auto it = s.fds.find(fd);
  if (it == s.fds.end()) return make_error(ENOENT, "event loop: fd {} is not registered", fd);
  epoll_event ev{};
  ev.events = events;
  ev.data.u64 = it->second;
  if (::epoll_ctl(epoll_.get(), EPOLL_CTL_MOD, fd, &ev) < 0) return errno_error("epoll_ctl mod fd {}", fd);
  return {};
}

Result<void> EventLoop::remove_fd(SubscriberId owner, int fd) {
  auto sub = subs_.find(owner);
  if (sub == subs_.end()) return make_error(ENOENT, "event loop: no subscriber {}", owner);
  auto& s = sub->second;
  auto it = s.fds.find(fd);
  if (it == s.fds.end()) return make_error(ENOENT, "event loop: fd {} is not registered", fd);
  keys_.erase(it->second);
  s.fds.erase(it);
  if (::epoll_ctl(epoll_.get(), EPOLL_CTL_DEL, fd, nullptr) < 0) return errno_error("epoll_ctl del fd {}", fd);
  return {};
}

Result<int> EventLoop::run_once(int timeout_ms) {
  epoll_event events[32];
  int n = ::epoll_wait(epoll_.get(), events, 32, timeout_ms);
  if (n < 0) {
    if (errno == EINTR) return 0;
    return errno_error("epoll_wait");
  }
  int dispatched = 0;
  while (waiting_.load() > 0) std::this_thread::yield();
  std::lock_guard<std::mutex> lock(mu_);
  dispatcher_.store(std::this_thread::get_id());
  for (int i = 0; i < n; ++i) {
    uint64_t key = events[i].data.u64;
    if (key == 0) {
      TRY(wake_.consume());
      continue;
    }
    // Looked up per event: a subscriber removed by an earlier event of this batch is skipped.
    auto reg = keys_.find(key);
    if (reg == keys_.end()) continue;
    auto [owner, fd, token] = reg->second;
    auto owner_it = subs_.find(owner);
    if (owner_it == subs_.end()) continue;  // a key outlives its subscriber only by a bug; skip it
    // A copy keeps the subscriber alive if process() removes it.
    std::shared_ptr<EventSubscriber> sub = owner_it->second.sub;
    Ops ops(*this, owner);
    sub->process(Event{fd, events[i].events, token}, ops);
    ++dispatched;
  }
  dispatcher_.store(std::thread::id{});
  return dispatched;
}

Result<void> EventLoop::start(ThreadSetup setup) {
  if (thread_.joinable()) return make_error(EBUSY, "event loop already running");
  stopping_ = false;
  // Signals belong to the vCPU and main threads; the loop thread inherits a full mask, but for
  // SIGSYS: the kernel ignores the handler of a blocked SIGSYS, so a seccomp trap would kill the
  // process without saying which call it was (sandbox/seccomp.h).
  sigset_t all, old;
  sigfillset(&all);
  sigdelset(&all, SIGSYS);
  pthread_sigmask(SIG_SETMASK, &all, &old);
  std::promise<Result<void>> ready;
  std::future<Result<void>> set_up = ready.get_future();
  thread_ = std::thread([this, setup = std::move(setup), ready = std::move(ready)]() mutable {
    Result<void> r = setup ? setup() : Result<void>{};
    bool ok = r.has_value();
    ready.set_value(std::move(r));
    if (!ok) return;
    while (!stopping_.load()) {
      if (auto r = run_once(-1); !r) {
        LOG_ERROR("event loop: {}", r.error().message());
        return;
      }
    }
  });
  pthread_sigmask(SIG_SETMASK, &old, nullptr);
  if (Result<void> r = set_up.get(); !r) {
    thread_.join();
    return r;
  }
  return {};
}

void EventLoop::stop() {
  if (!thread_.joinable()) return;
  stopping_ = true;
  if (auto r = wake_.signal(); !r) LOG_ERROR("event loop: {}", r.error().message());
  thread_.join();
}

}  // namespace evmm
