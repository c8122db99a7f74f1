#include "base/eventfd.h"

namespace evmm {

Result<EventFd> EventFd::create(int flags) {
  int fd = ::eventfd(0, flags | EFD_CLOEXEC);
  if (fd < 0) return errno_error("eventfd");
  return EventFd(UniqueFd(fd));
}

Result<void> EventFd::signal(uint64_t n) const {
  if (::write(fd_.get(), &n, sizeof n) != sizeof n) return errno_error("eventfd write");
  return {};
}

Result<uint64_t> EventFd::consume() const {
  uint64_t n = 0;
  if (::read(fd_.get(), &n, sizeof n) != sizeof n) {
    if (errno == EAGAIN) return 0;
    return errno_error("eventfd read");
  }
  return n;
}

}  // namespace evmm
