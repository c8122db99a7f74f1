#include "event/eventfd_interrupt_line.h"

#include <sys/epoll.h>

#include "base/log.h"

namespace evmm {

Result<std::shared_ptr<EventFdInterruptLine>> EventFdInterruptLine::create_unbound(Mode mode) {
  auto trigger = TRY(EventFd::create());
  std::optional<EventFd> resample;
  if (mode == Mode::Level) resample.emplace(TRY(EventFd::create()));
  return std::shared_ptr<EventFdInterruptLine>(new EventFdInterruptLine(mode, std::move(trigger), std::move(resample)));
}

Result<std::shared_ptr<EventFdInterruptLine>> EventFdInterruptLine::create(const VmFd& vm, uint32_t gsi, Mode mode) {
  auto line = TRY(create_unbound(mode));
  if (mode == Mode::Level)
    line->irqfd_.emplace(TRY(IrqFd::assign_resample(vm, gsi, line->trigger_, *line->resample_)));
  else
    line->irqfd_.emplace(TRY(IrqFd::assign(vm, gsi, line->trigger_)));
  return line;
}

// Runs on vCPU and device threads: a failure is counted and logged, never propagated to the guest path.
void EventFdInterruptLine::signal() {
  if (auto r = trigger_.signal(); !r) {
    failures_.fetch_add(1, std::memory_order_relaxed);
    LOG_WARN("irqfd line: {}", r.error().message());
  }
}

void EventFdInterruptLine::trigger() { signal(); }

void EventFdInterruptLine::set_level(bool asserted) {
  if (mode_ == Mode::Edge) {
    // An edge pin latches the rising edge only.
    if (asserted && !asserted_.exchange(true)) signal();
    if (!asserted) asserted_.store(false);
    return;
  }
  asserted_.store(asserted);
  if (asserted) signal();
}

void EventFdInterruptLine::init(EventOps& ops) {
  if (!resample_) return;
  if (auto r = ops.add(resample_->fd(), EPOLLIN, 0); !r) {
    failures_.fetch_add(1, std::memory_order_relaxed);
    LOG_ERROR("irqfd line: watching the resamplefd: {}", r.error().message());
  }
}

// The guest EOIed and KVM lowered the line: raise it again if the device still wants service.
void EventFdInterruptLine::process(const Event&, EventOps&) {
  if (auto r = resample_->consume(); !r) {
    failures_.fetch_add(1, std::memory_order_relaxed);
    LOG_WARN("irqfd line: resamplefd: {}", r.error().message());
  }
  if (asserted_.load()) signal();
}

}  // namespace evmm
