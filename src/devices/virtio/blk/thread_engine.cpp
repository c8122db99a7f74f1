// The thread-pool engine: a few workers run each operation with plain system calls and post the
// completion back to the event loop through an eventfd.
#include <fcntl.h>
#include <limits.h>
#include <pthread.h>
#include <signal.h>
#include <sys/uio.h>
#include <unistd.h>

#include <condition_variable>
#include <deque>
#include <mutex>
#include <thread>

#include "base/eventfd.h"
#include "base/log.h"
#include "devices/virtio/blk/engine.h"
#include "sandbox/seccomp.h"

namespace evmm::virtio {

namespace {

int transfer(int fd, IoOp& op) {
  uint64_t left = op.len;
  while (left > 0) {
    if (op.iov.empty()) return -EINVAL;
    // More than IOV_MAX iovecs is refused by the kernel: those past it go in the next round.
    int n_iov = int(std::min<size_t>(op.iov.size(), IOV_MAX));
    ssize_t n = op.kind == IoOp::Kind::Read
                    ? ::preadv(fd, op.iov.data(), n_iov, off_t(op.offset))
                    : ::pwritev2(fd, op.iov.data(), n_iov, off_t(op.offset), op.dsync ? RWF_DSYNC : 0);
    if (n < 0 && errno == EINTR) continue;
    if (n < 0) return -errno;
    if (n == 0) return -EIO;  // end of file: the image shrank under the disk
    advance_iov(op.iov, uint64_t(n));
    op.offset += uint64_t(n);
    left -= std::min<uint64_t>(left, uint64_t(n));
  }
  return 0;
}

int zero_range(int fd, const IoOp& op) {
  const off_t off = off_t(op.offset), len = off_t(op.len);
  if (::fallocate(fd, FALLOC_FL_ZERO_RANGE | FALLOC_FL_KEEP_SIZE, off, len) == 0) return 0;
  if (errno != EOPNOTSUPP) return -errno;
  // Filesystems without ZERO_RANGE (tmpfs): a hole reads as zeros, then allocate it again.
  if (::fallocate(fd, FALLOC_FL_PUNCH_HOLE | FALLOC_FL_KEEP_SIZE, off, len) != 0) return -errno;
  return ::fallocate(fd, FALLOC_FL_KEEP_SIZE, off, len) == 0 ? 0 : -errno;
}

int run(int fd, IoOp& op) {
  switch (op.kind) {
    case IoOp::Kind::Read:
    case IoOp::Kind::Write: return transfer(fd, op);
    case IoOp::Kind::Sync: return ::fdatasync(fd) == 0 ? 0 : -errno;
    case IoOp::Kind::PunchHole:
      return ::fallocate(fd, FALLOC_FL_PUNCH_HOLE | FALLOC_FL_KEEP_SIZE, off_t(op.offset), off_t(op.len)) == 0 ? 0 : -errno;
    case IoOp::Kind::ZeroRange: return zero_range(fd, op);
  }
  return -EINVAL;
}

class ThreadEngine final : public IoEngine {
 public:
  ThreadEngine(int fd, EventFd done) : fd_(fd), done_(std::move(done)) {}

  ~ThreadEngine() override {
    {
      std::lock_guard lock(mu_);
      stopping_ = true;
    }
    cv_.notify_all();
    // Workers finish what is queued before they leave: no operation is left running on guest memory.
    for (auto& t : workers_) t.join();
  }

  Result<void> start(const EngineOptions& opts) {
    int ready = 0, failed = 0;
    Error first_error{0, ""};
    for (unsigned i = 0; i < std::max(1u, opts.workers); ++i) {
      workers_.emplace_back([this, sandbox = opts.sandbox, &ready, &failed, &first_error] {
        // Signals belong to the main thread; SIGSYS stays open so a seccomp trap is reported.
        sigset_t all;
        sigfillset(&all);
        sigdelset(&all, SIGSYS);
        pthread_sigmask(SIG_BLOCK, &all, nullptr);
        Result<void> r = sandbox ? seccomp::install(seccomp::Role::Device) : Result<void>{};
        {
          std::lock_guard lock(mu_);
          if (r) ++ready;
          else if (failed++ == 0) first_error = r.error();
        }
        cv_.notify_all();
        if (r) work();
      });
    }
    std::unique_lock lock(mu_);
    cv_.wait(lock, [&] { return ready + failed == int(workers_.size()); });
    if (failed) {
      stopping_ = true;
      lock.unlock();
      cv_.notify_all();
      return tl::unexpected(first_error);
    }
    return {};
  }

  BlkEngineKind kind() const override { return BlkEngineKind::Threads; }
  int event_fd() const override { return done_.fd(); }

  void submit(IoOp op) override {
    {
      std::lock_guard lock(mu_);
      queue_.push_back(std::move(op));
      ++in_flight_;
    }
    cv_.notify_one();
  }
  void kick() override {}

  void reap(std::vector<IoCompletion>& out) override {
    (void)done_.consume();
    std::lock_guard lock(mu_);
    out.insert(out.end(), done_list_.begin(), done_list_.end());
    in_flight_ -= done_list_.size();
    done_list_.clear();
  }
  size_t in_flight() const override {
    std::lock_guard lock(mu_);
    return in_flight_;
  }

 private:
  void work() {
    for (;;) {
      IoOp op;
      {
        std::unique_lock lock(mu_);
        cv_.wait(lock, [&] { return stopping_ || !queue_.empty(); });
        if (queue_.empty()) return;
        op = std::move(queue_.front());
        queue_.pop_front();
      }
      int r = run(fd_, op);
      {
        std::lock_guard lock(mu_);
        done_list_.push_back({op.tag, r});
      }
      (void)done_.signal();
    }
  }

  const int fd_;
  EventFd done_;
  mutable std::mutex mu_;
  std::condition_variable cv_;
  std::deque<IoOp> queue_;
  std::vector<IoCompletion> done_list_;
  size_t in_flight_ = 0;
  bool stopping_ = false;
  std::vector<std::thread> workers_;
};

}  // namespace

Result<std::unique_ptr<IoEngine>> make_thread_engine(int fd, const EngineOptions& opts) {
  auto e = std::make_unique<ThreadEngine>(fd, TRY(EventFd::create()));
  TRY(e->start(opts));
  return std::unique_ptr<IoEngine>(std::move(e));
}

}  // namespace evmm::virtio
