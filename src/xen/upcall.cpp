#include "xen/upcall.h"

#include <xen/hvm/params.h>

#include "base/log.h"

namespace evmm {

XenUpcalls::XenUpcalls(uint32_t vcpus, Sink sink)
    : sink_(std::move(sink)), vcpus_(vcpus) {
  for (auto& v : vcpus_) v.store(0);
}

void XenUpcalls::inject(uint32_t vcpu) {
  if (vcpu >= vcpus_.size()) return;
  uint8_t vector = vcpus_[vcpu].load(std::memory_order_acquire);
  if (!vector) {
    uint64_t cb = callback_param_.load(std::memory_order_acquire);
    if ((cb >> 56) == HVM_PARAM_CALLBACK_TYPE_VECTOR) vector = static_cast<uint8_t>(cb);
  }
  if (!vector) {
    lost_.fetch_add(1, std::memory_order_relaxed);
    return;
  }
  injected_.fetch_add(1, std::memory_order_relaxed);
  if (sink_.inject_override) {
    sink_.inject_override(vcpu, vector);
  } else if (sink_.vm) {
    // A fixed, edge MSI to the vCPU's APIC ID (= its index), physical destination mode.
    kvm_msi msi{};
    msi.address_lo = 0xfee00000u | (vcpu << 12);
    msi.data = vector;
    if (auto r = sink_.vm->signal_msi(msi); !r) LOG_WARN("Xen upcall to vCPU {}: {}", vcpu, r.error().message());
  }
  if (sink_.notifier) sink_.notifier->notify();
}

void XenUpcalls::reassert(uint32_t vcpu, const EvtchnPages& pages, const Evtchn2lLayout& layout) {
  GuestSlice info = pages.vcpu_info(vcpu);
  if (info.load<uint8_t>(layout.upcall_pending_offset, std::memory_order_seq_cst).value_or(0)) inject(vcpu);
}

}  // namespace evmm
