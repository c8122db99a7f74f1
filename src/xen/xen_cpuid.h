// The CPUID leaves by which a guest finds Xen (xen/arch-x86/cpuid.h): a signature, the version, the
// hypercall page's MSR, and the HVM leaf with the vCPU and domain ids.
#pragma once

#include <cstdint>

#include "kvm/system.h"
#include "xen/xen_config.h"

namespace evmm {

// The first Xen leaf.
constexpr uint32_t xen_cpuid_base(const XenCpuidConfig& c) { return 0x40000000u + c.offset; }

// Adds (or replaces) the Xen leaves for vCPU vcpu_id in table. With offset 0 every KVM leaf in
// 0x40000000..0x400000ff is dropped first, so a guest sees exactly one hypervisor there.
void add_xen_cpuid_leaves(CpuidTable& table, const XenCpuidConfig& config, uint32_t vcpu_id);

}  // namespace evmm
