// KVM_IRQFD registrations: a write to an eventfd raises a GSI in the kernel, with no exit to userspace.
#pragma once

#include <cstdint>

#include "base/eventfd.h"
#include "base/result.h"
#include "kvm/vm_fd.h"

namespace evmm {

// A move-only registration that deassigns itself. It refers to the VM and the eventfds by reference:
// they must outlive it.
class IrqFd {
 public:
  // Edge (or MSI route): each write to trigger is one interrupt on gsi.
  static Result<IrqFd> assign(const VmFd& vm, uint32_t gsi, const EventFd& trigger);
  // Level (KVM_IRQFD_FLAG_RESAMPLE): a write asserts gsi until the guest's EOI; then the kernel
  // deasserts it and signals resample, and the device re-asserts if it still needs service.
  static Result<IrqFd> assign_resample(const VmFd& vm, uint32_t gsi, const EventFd& trigger, const EventFd& resample);

  IrqFd(IrqFd&& o) noexcept;
  IrqFd& operator=(IrqFd&& o) noexcept;
  IrqFd(const IrqFd&) = delete;
  IrqFd& operator=(const IrqFd&) = delete;
  ~IrqFd() { reset(); }

  uint32_t gsi() const { return gsi_; }
  bool resample() const { return resample_fd_ >= 0; }
  // Deassigns now; the kernel will not raise gsi for this eventfd after it returns.
  Result<void> deassign();

 private:
  IrqFd(const VmFd& vm, uint32_t gsi, int fd, int resample_fd)
      : vm_(&vm), gsi_(gsi), fd_(fd), resample_fd_(resample_fd) {}
  void reset();

  const VmFd* vm_ = nullptr;
  uint32_t gsi_ = 0;
  int fd_ = -1;
  int resample_fd_ = -1;
};

}  // namespace evmm
