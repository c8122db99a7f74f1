#include "vmm/required_caps.h"

namespace evmm {

namespace {
constexpr Capability kCaps[] = {
    {KVM_CAP_USER_MEMORY, "KVM_CAP_USER_MEMORY", true, "guest RAM from memfd mappings"},
    {KVM_CAP_IRQCHIP, "KVM_CAP_IRQCHIP", true, "in-kernel LAPIC, IOAPIC and PIC"},
    {KVM_CAP_PIT2, "KVM_CAP_PIT2", true, "in-kernel i8254 PIT"},
    {KVM_CAP_EXT_CPUID, "KVM_CAP_EXT_CPUID", true, "CPUID from KVM_GET_SUPPORTED_CPUID"},
    {KVM_CAP_SET_TSS_ADDR, "KVM_CAP_SET_TSS_ADDR", true, "VMX real-mode TSS"},
    {KVM_CAP_IMMEDIATE_EXIT, "KVM_CAP_IMMEDIATE_EXIT", true, "race-free vCPU kicks"},
    {KVM_CAP_MP_STATE, "KVM_CAP_MP_STATE", true, "vCPU MP states"},
    {KVM_CAP_IRQ_ROUTING, "KVM_CAP_IRQ_ROUTING", false, "GSI and MSI routes"},
    {KVM_CAP_IRQFD, "KVM_CAP_IRQFD", false, "interrupts from eventfds"},
    {KVM_CAP_IRQFD_RESAMPLE, "KVM_CAP_IRQFD_RESAMPLE", false, "level-triggered irqfds"},
    {KVM_CAP_IOEVENTFD, "KVM_CAP_IOEVENTFD", false, "guest writes signal eventfds in the kernel"},
    {KVM_CAP_IOEVENTFD_ANY_LENGTH, "KVM_CAP_IOEVENTFD_ANY_LENGTH", false, "zero-length MMIO ioeventfds"},
    {KVM_CAP_SIGNAL_MSI, "KVM_CAP_SIGNAL_MSI", false, "MSIs from userspace"},
    {KVM_CAP_ADJUST_CLOCK, "KVM_CAP_ADJUST_CLOCK", false, "exact pause and resume of guest time"},
    {KVM_CAP_X86_USER_SPACE_MSR, "KVM_CAP_X86_USER_SPACE_MSR", false, "MSR exits (Xen hypercall page)"},
    {KVM_CAP_X86_MSR_FILTER, "KVM_CAP_X86_MSR_FILTER", false, "MSR filters (Xen hypercall page)"},
    {KVM_CAP_EXIT_ON_EMULATION_FAILURE, "KVM_CAP_EXIT_ON_EMULATION_FAILURE", false,
     "instruction bytes for emulation assists"},
    {KVM_CAP_XEN_HVM, "KVM_CAP_XEN_HVM", false, "in-kernel Xen fast paths"},
    {KVM_CAP_DIRTY_LOG_RING, "KVM_CAP_DIRTY_LOG_RING", false, "dirty-page tracking for migration"},
    {KVM_CAP_COALESCED_MMIO, "KVM_CAP_COALESCED_MMIO", false, "batched MMIO writes"},
};
}  // namespace

std::span<const Capability> known_capabilities() { return kCaps; }

Result<void> check_required_capabilities(const System& kvm) {
  for (const auto& c : kCaps)
    if (c.required && kvm.check_extension(c.id) <= 0)
      return make_error(ENOTSUP, "host KVM lacks {} ({}), which evmm requires", c.name, c.why);
  return {};
}

}  // namespace evmm
