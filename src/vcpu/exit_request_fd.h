// Exit fds: eventfds that make a vCPU exit when written (seed 000: "KVM_VCPU_MAKE_EXITFD ... one for
// each waking thread, so they never cause cacheline conflicts").
//
// Each waker gets its own eventfd, so wakers share no cache line with each other, and the fd can be
// handed to another process. An ExitFdWatcher (one per VM) runs its own EventLoop thread with one
// subscriber per exit fd, which turns each signal into ExitRequests::request(count), so a write of 1
// is exactly one request.
#pragma once

#include <cstdint>
#include <memory>
#include <mutex>

#include "base/eventfd.h"
#include "base/result.h"
#include "event/event_loop.h"
#include "vcpu/exit_request.h"

namespace evmm {

class ExitFdWatcher;

// A move-only registration: destroying it deregisters the eventfd, and after the destructor returns
// no write to it (from this process or another) causes an exit.
class ExitFd {
 public:
  ExitFd(ExitFd&&) noexcept = default;
  ExitFd& operator=(ExitFd&& o) noexcept;
  ExitFd(const ExitFd&) = delete;
  ExitFd& operator=(const ExitFd&) = delete;
  ~ExitFd() { reset(); }

  // The eventfd; write an 8-byte count (1 per request) to it, or pass it to another process.
  int fd() const { return fd_.fd(); }
  Result<void> signal(uint64_t n = 1) const { return fd_.signal(n); }

 private:
  friend class ExitFdWatcher;
  ExitFd(std::shared_ptr<ExitFdWatcher> watcher, uint64_t id, EventFd fd)
      : watcher_(std::move(watcher)), id_(id), fd_(std::move(fd)) {}
  void reset();

  std::shared_ptr<ExitFdWatcher> watcher_;
  uint64_t id_ = 0;
  EventFd fd_;
};

// Turns writes to exit fds into exit requests. Each exit fd is a subscriber on an EventLoop (whose
// thread blocks every signal, so the kick signal never lands there); removing the subscriber is
// what makes a destroyed handle silent, as the loop never calls a removed subscriber again.
class ExitFdWatcher : public std::enable_shared_from_this<ExitFdWatcher> {
 public:
  static Result<std::shared_ptr<ExitFdWatcher>> create();

  // A new exit fd whose writes become requests on target; target must outlive the handle. The
  // loop's thread starts with the first one.
  Result<ExitFd> add(ExitRequests& target);

 private:
  friend class ExitFd;
  explicit ExitFdWatcher(std::unique_ptr<EventLoop> loop) : loop_(std::move(loop)) {}
  void remove(uint64_t id);

  std::unique_ptr<EventLoop> loop_;
  std::mutex mu_;
  bool started_ = false;  // the loop's thread runs
};

}  // namespace evmm
