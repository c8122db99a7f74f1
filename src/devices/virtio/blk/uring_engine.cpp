// The io_uring engine: one ring per disk, its completions announced on an eventfd registered with
// io_uring_register_eventfd, reaped on the device event loop. Reads and writes are readv/writev
// straight into guest memory.
#include <fcntl.h>
#include <limits.h>
#include <liburing.h>

#include <deque>

#include "base/eventfd.h"
#include "devices/virtio/blk/engine.h"

namespace evmm::virtio {

namespace {

class UringEngine final : public IoEngine {
 public:
  UringEngine(int fd, EventFd efd) : fd_(fd), efd_(std::move(efd)) {}

  Result<void> init(const EngineOptions& opts) {
    if (int r = io_uring_queue_init(std::max(8u, opts.entries), &ring_, 0); r < 0)
      return make_error(-r, "io_uring_queue_init");
    ring_ok_ = true;
    if (int r = io_uring_register_eventfd(&ring_, efd_.fd()); r < 0) return make_error(-r, "io_uring_register_eventfd");
    return {};
  }

  ~UringEngine() override {
    if (!ring_ok_) return;
    // The kernel may still be writing guest memory: wait for every submitted operation. Those never
    // handed over (the backlog) are dropped.
    backlog_.clear();
    io_uring_submit(&ring_);
    while (in_kernel_ > 0) {
      io_uring_cqe* cqe;
      int r = io_uring_wait_cqe(&ring_, &cqe);
      if (r == -EINTR) continue;
      if (r < 0) break;
      io_uring_cqe_seen(&ring_, cqe);
      --in_kernel_;
    }
    io_uring_queue_exit(&ring_);
  }

  BlkEngineKind kind() const override { return BlkEngineKind::IoUring; }
  int event_fd() const override { return efd_.fd(); }

  void submit(IoOp op) override {
    uint32_t slot;
    if (!free_.empty()) {
      slot = free_.back();
      free_.pop_back();
    } else {
      slot = uint32_t(slots_.size());
      slots_.emplace_back();
    }
    slots_[slot] = Slot{std::move(op), false, false, true};
    ++in_flight_;
    if (!backlog_.empty() || !prep(slot)) backlog_.push_back(slot);
  }

  void kick() override {
    while (!backlog_.empty() && prep(backlog_.front())) backlog_.pop_front();
    if (io_uring_sq_ready(&ring_) > 0) io_uring_submit(&ring_);
  }

  void reap(std::vector<IoCompletion>& out) override {
    (void)efd_.consume();
    io_uring_cqe* cqe;
    while (io_uring_peek_cqe(&ring_, &cqe) == 0) {
      const uint32_t slot = uint32_t(io_uring_cqe_get_data64(cqe));
      const int res = cqe->res;
      io_uring_cqe_seen(&ring_, cqe);
      --in_kernel_;
      if (slot < slots_.size() && slots_[slot].used) finish(slot, res, out);
    }
    kick();
  }

  size_t in_flight() const override { return in_flight_; }

 private:
  struct Slot {
    IoOp op;
    bool realloc = false;   // ZeroRange fallback: punching the hole, allocate it next
    bool allocate = false;  // ZeroRange fallback: a plain allocation of the punched range
    bool used = false;
  };

  // One completion of slot's operation: done, or continued (a short transfer, the ZeroRange fallback).
  void finish(uint32_t slot, int res, std::vector<IoCompletion>& out) {
    Slot& s = slots_[slot];
    IoOp& op = s.op;
    const bool rw = op.kind == IoOp::Kind::Read || op.kind == IoOp::Kind::Write;
    if (res == -EAGAIN || res == -EINTR) return resubmit(slot);
    if (rw && res >= 0 && uint64_t(res) < op.len) {
      if (res == 0) return complete(slot, -EIO, out);  // end of file: the image shrank under the disk
      advance_iov(op.iov, uint64_t(res));
      op.offset += uint64_t(res);
      op.len -= uint64_t(res);
      return resubmit(slot);
    }
    if (op.kind == IoOp::Kind::ZeroRange && res == -EOPNOTSUPP) {
      // Filesystems without ZERO_RANGE (tmpfs): a hole reads as zeros, then allocate it again.
      op.kind = IoOp::Kind::PunchHole;
      s.realloc = true;
      return resubmit(slot);
    }
    if (s.realloc && res == 0) {
      s.realloc = false;
      s.allocate = true;
      op.kind = IoOp::Kind::ZeroRange;
      return resubmit(slot);
    }
    complete(slot, res < 0 ? res : 0, out);
  }

  void complete(uint32_t slot, int result, std::vector<IoCompletion>& out) {
    out.push_back({slots_[slot].op.tag, result});
    slots_[slot] = Slot{};
    free_.push_back(slot);
    --in_flight_;
  }

  void resubmit(uint32_t slot) {
    if (!backlog_.empty() || !prep(slot)) backlog_.push_back(slot);
  }

  bool prep(uint32_t slot) {
    io_uring_sqe* sqe = io_uring_get_sqe(&ring_);
    if (!sqe) return false;
    IoOp& op = slots_[slot].op;
    // More than IOV_MAX iovecs is refused by the kernel: the rest goes as a continuation.
    const unsigned n = unsigned(std::min<size_t>(op.iov.size(), IOV_MAX));
    switch (op.kind) {
      case IoOp::Kind::Read: io_uring_prep_readv(sqe, fd_, op.iov.data(), n, op.offset); break;
      case IoOp::Kind::Write: io_uring_prep_writev2(sqe, fd_, op.iov.data(), n, op.offset, op.dsync ? RWF_DSYNC : 0); break;
      case IoOp::Kind::Sync: io_uring_prep_fsync(sqe, fd_, IORING_FSYNC_DATASYNC); break;
      case IoOp::Kind::PunchHole:
        io_uring_prep_fallocate(sqe, fd_, FALLOC_FL_PUNCH_HOLE | FALLOC_FL_KEEP_SIZE, op.offset, op.len);
        break;
      case IoOp::Kind::ZeroRange: {
        int mode = slots_[slot].allocate ? FALLOC_FL_KEEP_SIZE : FALLOC_FL_ZERO_RANGE | FALLOC_FL_KEEP_SIZE;
        io_uring_prep_fallocate(sqe, fd_, mode, op.offset, op.len);
        break;
      }
    }
    io_uring_sqe_set_data64(sqe, slot);
    ++in_kernel_;
    return true;
  }

  const int fd_;
  EventFd efd_;
  io_uring ring_{};
  bool ring_ok_ = false;
  std::vector<Slot> slots_;
  std::vector<uint32_t> free_;
  std::deque<uint32_t> backlog_;
  size_t in_flight_ = 0;  // operations submitted and not yet completed to the caller
  size_t in_kernel_ = 0;  // SQEs handed to the kernel whose CQE has not been seen
};

}  // namespace

Result<std::unique_ptr<IoEngine>> make_uring_engine(int fd, const EngineOptions& opts) {
  auto efd = TRY(EventFd::create());
  auto e = std::make_unique<UringEngine>(fd, std::move(efd));
  TRY(e->init(opts));
  return std::unique_ptr<IoEngine>(std::move(e));
}

}  // namespace evmm::virtio
