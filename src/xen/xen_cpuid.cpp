#include "xen/xen_cpuid.h"

#include <algorithm>

#include <xen/xen.h>
#include <xen/arch-x86/cpuid.h>

namespace evmm {

void add_xen_cpuid_leaves(CpuidTable& table, const XenCpuidConfig& c, uint32_t vcpu_id) {
  const uint32_t base = xen_cpuid_base(c);
  auto& e = table.entries();
  std::erase_if(e, [&](const kvm_cpuid_entry2& x) { return x.function >= base && x.function < base + 0x100; });
  auto leaf = [&](uint32_t i, uint32_t eax, uint32_t ebx, uint32_t ecx, uint32_t edx) {
    kvm_cpuid_entry2 x{};
    x.function = base + i;
    x.eax = eax;
    x.ebx = ebx;
    x.ecx = ecx;
    x.edx = edx;
    e.push_back(x);
  };
  // Leaf 0: the highest Xen leaf and "XenVMMXenVMM".
  leaf(0, base + 4, XEN_CPUID_SIGNATURE_EBX, XEN_CPUID_SIGNATURE_ECX, XEN_CPUID_SIGNATURE_EDX);
  // Leaf 1: major.minor.
  leaf(1, (uint32_t{c.major} << 16) | c.minor, 0, 0, 0);
  // Leaf 2: hypercall pages and the MSR that installs them; no PV MMU features.
  leaf(2, c.hypercall_pages, c.hypercall_msr, 0, 0);
  // Leaf 3: time (sub-leaves 0-2); all zero: no TSC mode advertised, the guest uses vcpu_time_info.
  leaf(3, 0, 0, 0, 0);
  // Leaf 4: HVM features. The per-vCPU upcall vector (HVMOP_set_evtchn_upcall_vector) is
  // supported; the vCPU id and domid are present.
  leaf(4, XEN_HVM_CPUID_VCPU_ID_PRESENT | XEN_HVM_CPUID_DOMID_PRESENT | XEN_HVM_CPUID_UPCALL_VECTOR, vcpu_id,
       c.domid, 0);
}

}  // namespace evmm
