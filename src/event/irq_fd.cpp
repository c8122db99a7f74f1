#include "event/irq_fd.h"

#include <utility>

#include "base/log.h"

namespace evmm {

Result<IrqFd> IrqFd::assign(const VmFd& vm, uint32_t gsi, const EventFd& trigger) {
  kvm_irqfd req{};
  req.fd = static_cast<uint32_t>(trigger.fd());
  req.gsi = gsi;
  TRY(vm.irqfd(req));
  return IrqFd(vm, gsi, trigger.fd(), -1);
}

Result<IrqFd> IrqFd::assign_resample(const VmFd& vm, uint32_t gsi, const EventFd& trigger, const EventFd& resample) {
  kvm_irqfd req{};
  req.fd = static_cast<uint32_t>(trigger.fd());
  req.gsi = gsi;
  req.flags = KVM_IRQFD_FLAG_RESAMPLE;
  req.resamplefd = static_cast<uint32_t>(resample.fd());
  TRY(vm.irqfd(req));
  return IrqFd(vm, gsi, trigger.fd(), resample.fd());
}

IrqFd::IrqFd(IrqFd&& o) noexcept
    : vm_(std::exchange(o.vm_, nullptr)), gsi_(o.gsi_), fd_(std::exchange(o.fd_, -1)),
      resample_fd_(std::exchange(o.resample_fd_, -1)) {}

IrqFd& IrqFd::operator=(IrqFd&& o) noexcept {
  if (this != &o) {
    reset();
    vm_ = std::exchange(o.vm_, nullptr);
    gsi_ = o.gsi_;
    fd_ = std::exchange(o.fd_, -1);
    resample_fd_ = std::exchange(o.resample_fd_, -1);
  }
  return *this;
}

Result<void> IrqFd::deassign() {
  if (!vm_) return {};
  kvm_irqfd req{};
  req.fd = static_cast<uint32_t>(fd_);
  req.gsi = gsi_;
  req.flags = KVM_IRQFD_FLAG_DEASSIGN;
  auto r = vm_->irqfd(req);
  vm_ = nullptr;
  fd_ = resample_fd_ = -1;
  return r;
}

void IrqFd::reset() {
  if (auto r = deassign(); !r) LOG_WARN("irqfd: {}", r.error().message());
}

}  // namespace evmm
