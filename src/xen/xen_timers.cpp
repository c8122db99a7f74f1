#include "xen/xen_timers.h"

#include <sys/epoll.h>
#include <sys/timerfd.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstring>

#include "base/log.h"
#include "xen/xen_time.h"

namespace evmm {

Result<std::shared_ptr<XenTimers>> XenTimers::create(uint32_t vcpus, uint64_t start_mono_ns,
                                                     std::function<void(uint32_t)> fire) {
  std::vector<UniqueFd> fds;
  for (uint32_t i = 0; i < vcpus; i++) {
    int t = timerfd_create(CLOCK_MONOTONIC, TFD_NONBLOCK | TFD_CLOEXEC);
    if (t < 0) return errno_error("Xen: timerfd_create");
    fds.emplace_back(t);
  }
  return std::shared_ptr<XenTimers>(new XenTimers(std::move(fds), start_mono_ns, std::move(fire)));
}

void XenTimers::arm(uint32_t vcpu, uint64_t timeout_abs_ns) {
  itimerspec its{};
  if (timeout_abs_ns) {
    // A deadline in the past fires at once (the smallest absolute time that is still armed).
    uint64_t at = start_mono_ns_ + std::min<uint64_t>(timeout_abs_ns, uint64_t{1} << 62);
    its.it_value = to_timespec(std::max<uint64_t>(at, 1));
  }
  if (timerfd_settime(fds_[vcpu].get(), TFD_TIMER_ABSTIME, &its, nullptr) < 0)
    LOG_WARN("Xen timer of vCPU {}: timerfd_settime: {}", vcpu, std::strerror(errno));
}

void XenTimers::init(EventOps& ops) {
  // The token is the vCPU index.
  for (uint32_t i = 0; i < fds_.size(); i++)
    if (auto r = ops.add(fds_[i].get(), EPOLLIN, i); !r) LOG_ERROR("Xen timers: {}", r.error().message());
}

void XenTimers::process(const Event& ev, EventOps&) {
  auto i = static_cast<uint32_t>(ev.token);
  uint64_t expirations;
  if (::read(ev.fd, &expirations, sizeof expirations) != sizeof expirations) return;  // disarmed meanwhile
  fires_.fetch_add(1, std::memory_order_relaxed);
  fire_(i);
}

}  // namespace evmm
