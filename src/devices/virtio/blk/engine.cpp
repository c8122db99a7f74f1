#include "devices/virtio/blk/engine.h"

#include "base/log.h"

namespace evmm::virtio {

std::string_view to_string(BlkEngineKind k) {
  switch (k) {
    case BlkEngineKind::Auto: return "auto";
    case BlkEngineKind::IoUring: return "io_uring";
    case BlkEngineKind::Threads: return "threads";
  }
  return "unknown";
}

Result<std::unique_ptr<IoEngine>> IoEngine::create(BlkEngineKind kind, int fd, const EngineOptions& opts) {
  if (kind == BlkEngineKind::Threads) return make_thread_engine(fd, opts);
  auto uring = make_uring_engine(fd, opts);
  if (uring || kind == BlkEngineKind::IoUring) return uring;
  LOG_INFO("virtio-blk: io_uring refused ({}); using the thread pool", uring.error().message());
  return make_thread_engine(fd, opts);
}

void advance_iov(std::vector<iovec>& iov, uint64_t n) {
  size_t drop = 0;
  while (drop < iov.size() && n >= iov[drop].iov_len) {
    n -= iov[drop].iov_len;
    ++drop;
  }
  iov.erase(iov.begin(), iov.begin() + static_cast<ptrdiff_t>(drop));
  if (n > 0 && !iov.empty()) {
    iov[0].iov_base = static_cast<uint8_t*>(iov[0].iov_base) + n;
    iov[0].iov_len -= n;
  }
}

}  // namespace evmm::virtio
