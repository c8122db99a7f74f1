// Upcall delivery (QEMU: xen_evtchn.c's kvm_xen_inject_vcpu_callback_vector): the vector a vCPU's
// pending events raise, as an MSI through the in-kernel LAPIC, and the wake-up of pollers.
#include "xen/xen_hvm_internal.h"

namespace evmm {

void XenHvm::inject(uint32_t vcpu) {
  if (vcpu >= vcpus_.size()) return;
  auto& v = *vcpus_[vcpu];
  uint8_t vector = v.upcall_vector.load(std::memory_order_acquire);
  if (!vector) {
    uint64_t cb = callback_param_.load(std::memory_order_acquire);
    if ((cb >> 56) == HVM_PARAM_CALLBACK_TYPE_VECTOR) vector = static_cast<uint8_t>(cb);
  }
  if (!vector) {
    // No upcall set up yet: the pending bits stay for the guest to find when it sets one.
    counters_->lost.fetch_add(1, std::memory_order_relaxed);
    return;
  }
  counters_->upcalls.fetch_add(1, std::memory_order_relaxed);
  if (env_.inject_override) {
    env_.inject_override(vcpu, vector);
  } else if (env_.vm) {
    // A fixed, edge MSI to the vCPU's APIC ID (= its index), physical destination mode.
    kvm_msi msi{};
    msi.address_lo = 0xfee00000u | (vcpu << 12);
    msi.data = vector;
    if (auto r = env_.vm->signal_msi(msi); !r) LOG_WARN("Xen upcall to vCPU {}: {}", vcpu, r.error().message());
  }
  if (env_.notifier) env_.notifier->notify();
}

void XenHvm::reassert_upcall(uint32_t vcpu) {
  // Xen asserts the new callback for a vCPU whose upcall is already flagged (hvm_assert_evtchn_irq):
  // events that arrived before the guest chose a vector are not stranded behind the flag.
  auto info = pages_->vcpu_info(vcpu);
  size_t off = pages_->layout().upcall_pending_offset;
  if (info.load<uint8_t>(off, std::memory_order_seq_cst).value_or(0)) inject(vcpu);
}

void XenHvm::on_pending(uint32_t, uint32_t) {
  // A poller waits for any of its ports, whichever vCPU they are bound to (Xen's poll_mask).
  for (auto& v : vcpus_)
    if (v->waiting.load()) (void)v->wake.signal();
}

}  // namespace evmm
