// Tells suspended vCPUs that an interrupt may have been raised for them (DESIGN.md §5).
//
// KVM delivers evmm's interrupts (irqfds, KVM_IRQ_LINE, KVM_SIGNAL_MSI) straight into the in-kernel
// LAPICs, and nothing tells userspace when a vCPU that is not in KVM_RUN has one pending. So every
// interrupt path evmm owns calls notify() after raising, and a suspended vCPU, which waits on its
// own eventfd, rechecks its LAPIC when told. KVM injects irqfd writes from a workqueue, after the
// write has returned and with no word when done, so a waiter also rechecks with backoff after each
// notification, down to once a second while it stays suspended (vcpu/vcpu.cpp).
//
// Interrupts the kernel raises on its own (guest IPIs, the in-kernel LAPIC timer and PIT) do not pass
// through here and are not wakeup events for a suspended vCPU.
#pragma once

#include <atomic>
#include <memory>
#include <mutex>
#include <vector>

#include "base/eventfd.h"
#include "event/interrupt_line.h"

namespace evmm {

class InterruptAnnouncer {
 public:
  // Any thread, after an interrupt was raised. One atomic read-modify-write when no vCPU waits.
  void notify();
  // A waiter's eventfd gets one signal per notify() while it is registered. The fd must outlive
  // the registration.
  void add_waiter(const EventFd* fd);
  void remove_waiter(const EventFd* fd);
  uint64_t notifications() const { return notifications_.load(std::memory_order_relaxed); }

 private:
  std::atomic<int> waiters_{0};
  std::atomic<uint64_t> notifications_{0};
  std::mutex mu_;
  std::vector<const EventFd*> fds_;
};

// An InterruptLine that notifies after each trigger and each assertion.
class AnnouncingInterruptLine final : public InterruptLine {
 public:
  AnnouncingInterruptLine(std::shared_ptr<InterruptLine> line, InterruptAnnouncer& notifier)
      : line_(std::move(line)), notifier_(notifier) {}
  void trigger() override {
    line_->trigger();
    notifier_.notify();
  }
  void set_level(bool asserted) override {
    line_->set_level(asserted);
    if (asserted) notifier_.notify();
  }

 private:
  std::shared_ptr<InterruptLine> line_;
  InterruptAnnouncer& notifier_;
};

}  // namespace evmm
