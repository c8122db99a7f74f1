#include "event/kvm_irq_line.h"

#include "base/log.h"

namespace evmm {

void KvmIrqLine::line(bool level) {
  if (auto r = vm_.irq_line(gsi_, level); !r) {
    failures_.fetch_add(1, std::memory_order_relaxed);
    LOG_WARN("GSI {}: {}", gsi_, r.error().message());
  }
}

// An edge is a rising then falling level; the PIC and IOAPIC latch it on the rise.
void KvmIrqLine::trigger() {
  line(true);
  line(false);
}

void KvmIrqLine::set_level(bool asserted) { line(asserted); }

}  // namespace evmm
