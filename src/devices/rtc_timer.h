// The RTC's timer: makes its update, alarm and periodic interrupts fire without a polling guest.
//
// An event-loop subscriber owning a one-shot timerfd, armed at the absolute time of
// Rtc::next_event_ns(). When it expires, on the loop thread, the RTC brings register C up to date
// (which raises the IRQ) and the timer re-arms for the next event, or stays disarmed when nothing
// is enabled or IRQF is already set: an idle RTC costs no wake-ups. A guest access that can move
// the next event (a data-port write, a read of C) re-arms it from the vCPU thread through the
// RTC's change hook; re-arming only calls timerfd_settime when the deadline changes. Periodic
// interrupts are capped at Rtc::kMaxTimerHz wake-ups a second (see devices/rtc.h).
//
// The timerfd counts CLOCK_REALTIME, the clock the RTC's time follows (Clock::realtime_ns()), so
// the RTC must run on the host's clock (SystemClock), and a step of the host clock moves the
// deadline and the RTC's time alike.
//
// Alarms (AF while AIE) are wake events: after each batch, on the loop thread, the alarm handler
// runs; by then the RTC has set RTC_STS in the ACPI PM device. An alarm that a guest access
// noticed first is handed to the loop thread the same way (the timer fires at once).
#pragma once

#include <atomic>
#include <cstdint>
#include <functional>
#include <memory>
#include <mutex>
#include <optional>

#include "base/fd.h"
#include "base/result.h"
#include "devices/rtc.h"
#include "event/event_loop.h"

namespace evmm {

struct RtcTimerStats {
  std::atomic<uint64_t> wakeups{0};   // timerfd expirations processed
  std::atomic<uint64_t> arms{0};      // timerfd_settime calls that changed the deadline
  std::atomic<uint64_t> failures{0};  // timerfd errors, logged
};

class RtcTimer final : public EventSubscriber {
 public:
  // Creates the timerfd and installs itself as rtc's change hook; then add it to an event loop.
  // Call before the guest runs.
  static Result<std::shared_ptr<RtcTimer>> create(std::shared_ptr<Rtc> rtc);

  // handler runs on the loop thread after alarms; set it any time, from any thread.
  void set_alarm_handler(std::function<void()> handler);
  // Re-arms for the RTC's next event; any thread.
  void rearm();

  void init(EventOps& ops) override;
  void process(const Event& event, EventOps& ops) override;

  // The absolute CLOCK_REALTIME deadline the timerfd holds, nullopt when disarmed (or unknown
  // right after an expiry); for tests and stats.
  std::optional<int64_t> deadline();
  const RtcTimerStats& stats() const { return stats_; }

 private:
  RtcTimer(std::shared_ptr<Rtc> rtc, UniqueFd fd) : rtc_(std::move(rtc)), fd_(std::move(fd)) {}
  uint64_t update(bool take_alarms);
  void arm(std::optional<int64_t> at);

  std::shared_ptr<Rtc> rtc_;
  UniqueFd fd_;

  std::mutex mu_;  // taken before the RTC's lock
  static constexpr int64_t kUnknown = -1, kDisarmed = 0;
  int64_t armed_ = kDisarmed;  // what the timerfd holds: an absolute time, kDisarmed or kUnknown
  std::function<void()> alarm_handler_;

  RtcTimerStats stats_;
};

}  // namespace evmm
