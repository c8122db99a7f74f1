// Exit fds: eventfds that make a vCPU exit when written (seed 000: "KVM_VCPU_MAKE_EXITFD ... one for
// each waking thread, so they never cause cacheline conflicts").
//
// Each waker gets its own eventfd, so wakers share no cache line with each other, and the fd can be
// handed to another process. One watcher thread per VM waits on all of them with epoll and turns
// each signal into ExitRequests::request(count), so a write of 1 is exactly one request. The
// per-fd work is dispatch(); when the event loop (event/event_loop.h) exists, its subscriber can
// call that instead of this thread.
#pragma once

#include <cstdint>
#include <memory>
#include <mutex>
#include <thread>
#include <unordered_map>

#include "base/eventfd.h"
#include "base/fd.h"
#include "base/result.h"
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

class ExitFdWatcher : public std::enable_shared_from_this<ExitFdWatcher> {
 public:
  static Result<std::shared_ptr<ExitFdWatcher>> create();
  ~ExitFdWatcher();

  // A new exit fd whose writes become requests on target; target must outlive the handle. The
  // watcher thread starts with the first one.
  Result<ExitFd> add(ExitRequests& target);

  // Takes the count of registration id's eventfd and requests that many exits; ignores an id that
  // has been removed. Called by the watcher thread when the eventfd is readable.
  void dispatch(uint64_t id);

 private:
  friend class ExitFd;
  struct Entry {
    int fd;
    ExitRequests* target;
  };
  ExitFdWatcher(UniqueFd epoll, EventFd stop) : epoll_(std::move(epoll)), stop_(std::move(stop)) {}
  void remove(uint64_t id);
  void loop();

  UniqueFd epoll_;
  EventFd stop_;  // epoll data 0
  std::thread thread_;
  // Held while an entry is used or changed, so that remove() returning means the entry is unused.
  std::mutex mu_;
  std::unordered_map<uint64_t, Entry> entries_;
  uint64_t next_id_ = 1;
};

}  // namespace evmm
