// The Xen singleshot timers (VCPUOP_set_singleshot_timer, set_timer_op; QEMU: the timer half of
// hw/i386/kvm/xen_evtchn.c): one CLOCK_MONOTONIC timerfd per vCPU, armed at an absolute Xen system
// time and watched by the device event loop, which hands each expiry to fire (VIRQ_TIMER).
#pragma once

#include <atomic>
#include <cstdint>
#include <functional>
#include <memory>
#include <vector>

#include "base/fd.h"
#include "base/result.h"
#include "event/event_loop.h"

namespace evmm {

class XenTimers final : public EventSubscriber {
 public:
  // start_mono_ns: the host CLOCK_MONOTONIC time of Xen system time 0.
  static Result<std::shared_ptr<XenTimers>> create(uint32_t vcpus, uint64_t start_mono_ns,
                                                   std::function<void(uint32_t vcpu)> fire);

  // Arms vcpu's timer for Xen system time timeout_abs_ns; 0 stops it. A deadline in the past fires
  // at once.
  void arm(uint32_t vcpu, uint64_t timeout_abs_ns);
  uint64_t fires() const { return fires_.load(); }

  void init(EventOps& ops) override;
  void process(const Event& event, EventOps& ops) override;

 private:
  XenTimers(std::vector<UniqueFd> fds, uint64_t start, std::function<void(uint32_t)> fire)
      : fds_(std::move(fds)), start_mono_ns_(start), fire_(std::move(fire)) {}

  std::vector<UniqueFd> fds_;
  uint64_t start_mono_ns_;
  std::function<void(uint32_t)> fire_;
  std::atomic<uint64_t> fires_{0};
};

}  // namespace evmm
