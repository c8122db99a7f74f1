// An InterruptLine backed by irqfd: raising it is an eventfd write that KVM turns into an interrupt,
// with no KVM_IRQ_LINE ioctl.
#pragma once

#include <atomic>
#include <cstdint>
#include <memory>
#include <optional>

#include "base/eventfd.h"
#include "event/event_loop.h"
#include "event/interrupt_line.h"
#include "event/irq_fd.h"

namespace evmm {

// Edge: every trigger() (and every rising set_level) is one write to the irqfd.
// Level: a resample irqfd. set_level(true) writes the irqfd and remembers "asserted"; the kernel holds
// the GSI high until the guest's EOI, then lowers it and signals the resamplefd. This line, an event
// loop subscriber, reads the resamplefd and re-signals while still asserted; set_level(false) stops that.
// A deassert before the EOI cannot lower the kernel's line early: the guest may see one interrupt
// whose source is already quiet, as with VFIO's INTx in QEMU.
class EventFdInterruptLine final : public InterruptLine, public EventSubscriber {
 public:
  enum class Mode { Edge, Level };

  // Registers an irqfd on gsi (resample for Level). The VM must outlive the line.
  static Result<std::shared_ptr<EventFdInterruptLine>> create(const VmFd& vm, uint32_t gsi, Mode mode);
  // The same logic over bare eventfds, not registered with KVM: for tests, or for a caller that
  // registers trigger_fd()/resample_fd() itself.
  static Result<std::shared_ptr<EventFdInterruptLine>> create_unbound(Mode mode);

  void trigger() override;
  void set_level(bool asserted) override;

  // EventSubscriber: a Level line watches its resamplefd; an Edge line has nothing to watch.
  void init(EventOps& ops) override;
  void process(const Event& event, EventOps& ops) override;

  Mode mode() const { return mode_; }
  bool asserted() const { return asserted_.load(); }
  const EventFd& trigger_fd() const { return trigger_; }
  const EventFd* resample_fd() const { return resample_ ? &*resample_ : nullptr; }
  uint64_t failures() const { return failures_.load(); }

 private:
  EventFdInterruptLine(Mode mode, EventFd trigger, std::optional<EventFd> resample)
      : mode_(mode), trigger_(std::move(trigger)), resample_(std::move(resample)) {}
  void signal();

  Mode mode_;
  EventFd trigger_;
  std::optional<EventFd> resample_;
  // Declared after the eventfds so that it deassigns before they close.
  std::optional<IrqFd> irqfd_;
  std::atomic<bool> asserted_{false};
  std::atomic<uint64_t> failures_{0};
};

}  // namespace evmm
