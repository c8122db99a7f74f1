#include "vcpu/exit_request_fd.h"

#include <sys/epoll.h>

#include "base/log.h"
#include "vcpu/kick.h"

namespace evmm {

ExitFd& ExitFd::operator=(ExitFd&& o) noexcept {
  if (this != &o) {
    reset();
    watcher_ = std::move(o.watcher_);
    id_ = std::exchange(o.id_, 0);
    fd_ = std::move(o.fd_);
  }
  return *this;
}

void ExitFd::reset() {
  if (watcher_) watcher_->remove(id_);
  watcher_.reset();
}

Result<std::shared_ptr<ExitFdWatcher>> ExitFdWatcher::create() {
  int ep = ::epoll_create1(EPOLL_CLOEXEC);
  if (ep < 0) return errno_error("epoll_create1 for exit fds");
  UniqueFd epoll(ep);
  EventFd stop = TRY(EventFd::create());
  epoll_event ev{};
  ev.events = EPOLLIN;
  ev.data.u64 = 0;
  if (::epoll_ctl(ep, EPOLL_CTL_ADD, stop.fd(), &ev) < 0) return errno_error("epoll_ctl for exit fds");
  return std::shared_ptr<ExitFdWatcher>(new ExitFdWatcher(std::move(epoll), std::move(stop)));
}

ExitFdWatcher::~ExitFdWatcher() {
  if (!thread_.joinable()) return;
  if (auto r = stop_.signal(); !r) LOG_ERROR("exit fd watcher: {}", r.error().message());
  thread_.join();
}

Result<ExitFd> ExitFdWatcher::add(ExitRequests& target) {
  EventFd fd = TRY(EventFd::create());
  std::lock_guard lock(mu_);
  uint64_t id = next_id_++;
  epoll_event ev{};
  ev.events = EPOLLIN;
  ev.data.u64 = id;
  if (::epoll_ctl(epoll_.get(), EPOLL_CTL_ADD, fd.fd(), &ev) < 0) return errno_error("epoll_ctl adding an exit fd");
  entries_.emplace(id, Entry{fd.fd(), &target});
  if (!thread_.joinable()) thread_ = std::thread([this] { loop(); });
  return ExitFd(shared_from_this(), id, std::move(fd));
}

void ExitFdWatcher::remove(uint64_t id) {
  std::lock_guard lock(mu_);
  auto it = entries_.find(id);
  if (it == entries_.end()) return;
  ::epoll_ctl(epoll_.get(), EPOLL_CTL_DEL, it->second.fd, nullptr);
  entries_.erase(it);
}

void ExitFdWatcher::dispatch(uint64_t id) {
  std::lock_guard lock(mu_);
  auto it = entries_.find(id);
  if (it == entries_.end()) return;  // removed after epoll_wait reported it
  uint64_t n = 0;
  if (::read(it->second.fd, &n, sizeof n) != sizeof n) return;  // EAGAIN: taken already
  it->second.target->request(n);
}

void ExitFdWatcher::loop() {
  // Not a vCPU thread: the kick signal must never land here.
  block_kick_signal();
  epoll_event events[16];
  for (;;) {
    int n = ::epoll_wait(epoll_.get(), events, 16, -1);
    if (n < 0) {
      if (errno == EINTR) continue;
      LOG_ERROR("exit fd watcher: epoll_wait: {}", std::strerror(errno));
      return;
    }
    for (int i = 0; i < n; ++i) {
      if (events[i].data.u64 == 0) return;
      dispatch(events[i].data.u64);
    }
  }
}

}  // namespace evmm
