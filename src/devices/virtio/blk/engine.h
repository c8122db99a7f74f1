// virtio-blk's I/O engine: asynchronous reads, writes, syncs and fallocates on the image fd, straight
// into guest memory (GuestMemory::io_vectors), completed on the device event loop.
//
// Rules:
//   - submit() never blocks and never fails: a refused operation comes back as a completion with
//     its -errno. Short transfers are continued by the engine; one that makes no progress (the file
//     shrank under the disk) completes with -EIO. A completion's result is 0 or -errno.
//   - Completions are collected by reap() on the event loop thread when event_fd() is readable
//     (the io_uring's registered eventfd, or the thread pool's own). Nothing runs a device callback
//     on another thread.
//   - Operations run in any order; a caller that needs order (a flush after writes) waits for the
//     completions first.
//   - The destructor waits for every operation in flight: their buffers are guest memory, which must
//     not be unmapped under the kernel or a worker.
//
// Engines: io_uring (Debian's liburing), or a few worker threads doing preadv/pwritev2/fdatasync/
// fallocate where io_uring is refused (io_uring_setup fails: an old kernel, the
// kernel.io_uring_disabled sysctl, a seccomp policy). Auto tries io_uring first.
#pragma once

#include <sys/uio.h>

#include <cstdint>
#include <memory>
#include <string_view>
#include <vector>

#include "base/result.h"

namespace evmm::virtio {

enum class BlkEngineKind { Auto, IoUring, Threads };
std::string_view to_string(BlkEngineKind k);

struct IoOp {
  enum class Kind : uint8_t { Read, Write, Sync, PunchHole, ZeroRange };
  Kind kind = Kind::Read;
  uint64_t offset = 0;  // bytes into the file
  uint64_t len = 0;     // bytes: the iovecs' total for Read/Write, the range for the fallocates
  std::vector<iovec> iov;
  bool dsync = false;   // Write: stable on completion (RWF_DSYNC)
  uint64_t tag = 0;     // the caller's, returned with the completion
};

struct IoCompletion {
  uint64_t tag;
  int result;  // 0 or -errno
};

struct EngineOptions {
  unsigned entries = 256;  // io_uring submission entries, or the thread pool's queue hint
  unsigned workers = 4;    // thread pool only
  bool sandbox = false;    // worker threads install the device seccomp filter
};

class IoEngine {
 public:
  // Auto: io_uring, or the thread pool (logged) if io_uring is refused. fd must outlive the engine.
  static Result<std::unique_ptr<IoEngine>> create(BlkEngineKind kind, int fd, const EngineOptions& opts);
  virtual ~IoEngine() = default;

  virtual BlkEngineKind kind() const = 0;
  virtual int event_fd() const = 0;
  virtual void submit(IoOp op) = 0;
  // Hands queued submissions to the kernel (io_uring: one io_uring_enter for a batch).
  virtual void kick() = 0;
  // Appends the completions that are ready; clears the event fd first, so none is missed.
  virtual void reap(std::vector<IoCompletion>& out) = 0;
  virtual size_t in_flight() const = 0;
};

Result<std::unique_ptr<IoEngine>> make_uring_engine(int fd, const EngineOptions& opts);
Result<std::unique_ptr<IoEngine>> make_thread_engine(int fd, const EngineOptions& opts);

// Drops the first n bytes of iov (a short transfer's progress).
void advance_iov(std::vector<iovec>& iov, uint64_t n);

}  // namespace evmm::virtio
