// An eventfd: the carrier of every signal on evmm's event plane.
#pragma once

#include <sys/eventfd.h>

#include <cstdint>

#include "base/fd.h"
#include "base/result.h"

namespace evmm {

class EventFd {
 public:
  // flags are eventfd(2) flags; EFD_CLOEXEC is always added.
  static Result<EventFd> create(int flags = EFD_NONBLOCK);

  Result<void> signal(uint64_t n = 1) const;
  // Returns the counter and resets it; 0 when non-blocking and nothing is pending.
  Result<uint64_t> consume() const;
  int fd() const { return fd_.get(); }

 private:
  explicit EventFd(UniqueFd fd) : fd_(std::move(fd)) {}
  UniqueFd fd_;
};

}  // namespace evmm
