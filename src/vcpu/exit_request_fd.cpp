#include "vcpu/exit_request_fd.h"

#include <sys/epoll.h>

#include "base/log.h"

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

namespace {

// One exit fd: a readable eventfd of count n becomes n requests.
class ExitFdSubscriber final : public EventSubscriber {
 public:
  ExitFdSubscriber(int fd, ExitRequests& target) : fd_(fd), target_(target) {}
  void init(EventOps& ops) override {
    if (auto r = ops.add(fd_, EPOLLIN, 0); !r) LOG_ERROR("exit fd: {}", r.error().message());
  }
  void process(const Event&, EventOps&) override {
    uint64_t n = 0;
    if (::read(fd_, &n, sizeof n) == sizeof n) target_.request(n);  // EAGAIN: taken already
  }

 private:
  int fd_;
  ExitRequests& target_;
};

}  // namespace

Result<std::shared_ptr<ExitFdWatcher>> ExitFdWatcher::create() {
  return std::shared_ptr<ExitFdWatcher>(new ExitFdWatcher(TRY(EventLoop::create())));
}

Result<ExitFd> ExitFdWatcher::add(ExitRequests& target) {
  EventFd fd = TRY(EventFd::create());
  uint64_t id = TRY(loop_->add(std::make_shared<ExitFdSubscriber>(fd.fd(), target)));
  {
    std::lock_guard lock(mu_);
    if (!started_) {
      if (auto r = loop_->start(); !r) {
        remove(id);
        return tl::unexpected(r.error());
      }
      started_ = true;
    }
  }
  return ExitFd(shared_from_this(), id, std::move(fd));
}

void ExitFdWatcher::remove(uint64_t id) {
  if (auto r = loop_->remove(id); !r) LOG_WARN("exit fd: {}", r.error().message());
}

}  // namespace evmm
