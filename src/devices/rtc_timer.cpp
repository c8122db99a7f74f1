#include "devices/rtc_timer.h"

#include <sys/epoll.h>
#include <sys/timerfd.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstring>

#include "base/log.h"

namespace evmm {

Result<std::shared_ptr<RtcTimer>> RtcTimer::create(std::shared_ptr<Rtc> rtc) {
  int fd = ::timerfd_create(CLOCK_REALTIME, TFD_NONBLOCK | TFD_CLOEXEC);
  if (fd < 0) return errno_error("rtc timer: timerfd_create");
  std::shared_ptr<RtcTimer> t(new RtcTimer(rtc, UniqueFd(fd)));
  // A weak reference: the RTC may outlive its timer (the event loop lets go of it last).
  rtc->set_change_hook([weak = std::weak_ptr<RtcTimer>(t)] {
    if (auto timer = weak.lock()) timer->rearm();
  });
  return t;
}

void RtcTimer::set_alarm_handler(std::function<void()> handler) {
  std::lock_guard lock(mu_);
  alarm_handler_ = std::move(handler);
}

std::optional<int64_t> RtcTimer::deadline() {
  std::lock_guard lock(mu_);
  if (armed_ == kDisarmed || armed_ == kUnknown) return std::nullopt;
  return armed_;
}

void RtcTimer::arm(std::optional<int64_t> at) {
  // Absolute time 0 would disarm, and any instant already past fires at once.
  int64_t want = at ? std::max<int64_t>(*at, 1) : kDisarmed;
  if (want == armed_) return;
  itimerspec its{};
  its.it_value.tv_sec = want / kNsPerSec;
  its.it_value.tv_nsec = want % kNsPerSec;
  if (::timerfd_settime(fd_.get(), TFD_TIMER_ABSTIME, &its, nullptr) < 0) {
    stats_.failures.fetch_add(1, std::memory_order_relaxed);
    LOG_WARN("rtc timer: timerfd_settime: {}", std::strerror(errno));
    armed_ = kUnknown;
    return;
  }
  stats_.arms.fetch_add(1, std::memory_order_relaxed);
  armed_ = want;
}

uint64_t RtcTimer::update(bool take_alarms) {
  std::lock_guard lock(mu_);
  std::optional<int64_t> next = rtc_->next_event_ns();
  uint64_t alarms = take_alarms ? rtc_->take_alarms() : 0;
  // An alarm a guest access noticed is handed to the loop thread, where the handler runs.
  if (!take_alarms && rtc_->alarms_pending()) next = 1;
  arm(next);
  return alarms;
}

void RtcTimer::rearm() { update(/*take_alarms=*/false); }

void RtcTimer::init(EventOps& ops) {
  if (auto r = ops.add(fd_.get(), EPOLLIN, 0); !r) {
    stats_.failures.fetch_add(1, std::memory_order_relaxed);
    LOG_ERROR("rtc timer: {}", r.error().message());
    return;
  }
  rearm();
}

void RtcTimer::process(const Event&, EventOps&) {
  uint64_t expirations = 0;
  // EAGAIN: a guest access re-armed the timer after it expired, which resets the count.
  if (::read(fd_.get(), &expirations, sizeof expirations) < 0 && errno != EAGAIN) {
    stats_.failures.fetch_add(1, std::memory_order_relaxed);
    LOG_WARN("rtc timer: read: {}", std::strerror(errno));
  }
  stats_.wakeups.fetch_add(1, std::memory_order_relaxed);
  std::function<void()> handler;
  {
    std::lock_guard lock(mu_);
    armed_ = kUnknown;  // a one-shot timer that expired holds nothing
    handler = alarm_handler_;
  }
  if (update(/*take_alarms=*/true) && handler) handler();
}

}  // namespace evmm
