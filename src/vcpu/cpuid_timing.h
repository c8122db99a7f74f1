// The hypervisor timing leaf (CPUID 0x40000010) that tells a guest its TSC and LAPIC timer rates,
// so that it need not calibrate one against the other. A calibration is only as good as the host
// is idle: 100 demo VMs on 2 cores measured their TSC against a LAPIC timer that load had skewed,
// and reported seconds as minutes. QEMU offers the same leaf (`vmware-cpuid-freq`) beside KVM's.
#pragma once

#include <cstdint>

#include "kvm/system.h"

namespace evmm {

inline constexpr uint32_t kCpuidTimingLeaf = 0x40000010;
// KVM's in-kernel LAPIC timer counts at 1 GHz (APIC_BUS_CYCLE_NS is 1 ns).
inline constexpr uint32_t kLapicBusKhz = 1'000'000;

// Adds leaf 0x40000010 (EAX: TSC kHz, EBX: LAPIC bus kHz) and raises the max leaf in 0x40000000 to
// include it, when KVM's signature holds 0x40000000. Another hypervisor's leaves there (Xen's,
// with --xen) are left alone, since 0x40000010 would fall inside their range with other meaning.
// Returns whether it added the leaf.
bool add_cpuid_timing_leaf(CpuidTable& table, uint32_t tsc_khz);

}  // namespace evmm
