// An interrupt line driven through KVM_IRQ_LINE on the in-kernel PIC and IOAPIC.
#pragma once

#include <atomic>
#include <cstdint>

#include "event/interrupt_line.h"
#include "kvm/vm_fd.h"

namespace evmm {

class KvmIrqLine final : public InterruptLine {
 public:
  KvmIrqLine(const VmFd& vm, uint32_t gsi) : vm_(vm), gsi_(gsi) {}
  void trigger() override;
  void set_level(bool asserted) override;
  uint64_t failures() const { return failures_.load(); }

 private:
  void line(bool level);
  const VmFd& vm_;
  uint32_t gsi_;
  std::atomic<uint64_t> failures_{0};
};

}  // namespace evmm
