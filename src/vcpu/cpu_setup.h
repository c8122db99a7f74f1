// The architectural state evmm gives each vCPU before it first runs.
#pragma once

#include <cstdint>

#include "base/result.h"
#include "boot/boot.h"
#include "kvm/system.h"
#include "kvm/vcpu_fd.h"
#include "memory/guest_memory.h"

namespace evmm {

// KVM's supported CPUID, specialised for vCPU `id` of `cpus`: APIC IDs in leaves 1, 0xB, 0x1F and
// 0x8000001E, and a topology of one package with `cpus` cores of one thread each.
CpuidTable cpuid_for_vcpu(const CpuidTable& supported, unsigned id, unsigned cpus);

// CPUID, the MSRs a guest needs, the FPU reset state and the LAPIC LINT pins (LINT0 ExtINT, LINT1
// NMI, as firmware leaves them). Every vCPU gets this; APs then wait for INIT/SIPI.
Result<void> configure_vcpu(const VcpuFd& vcpu, const CpuidTable& supported, unsigned id, unsigned cpus);

// Writes the boot GDT (layout::kBootGdt) and, for a 64-bit entry, identity page tables
// (layout::kPml4) into guest memory.
Result<void> write_boot_tables(const GuestMemory& mem, EntryMode mode);
// Registers and segments of the BSP at the image's entry.
Result<void> set_entry_state(const VcpuFd& vcpu, const BootEntry& entry);
// Real mode at cs:ip, as firmware leaves a CPU when it jumps to an ACPI waking vector: protection
// and paging off, data segments 0, IF clear.
Result<void> set_real_mode_state(const VcpuFd& vcpu, uint16_t cs, uint16_t ip);
// The registers after INIT (then set MpState::Stopped to wait for a SIPI): an AP after S3 resume.
Result<void> set_init_registers(const VcpuFd& vcpu);

}  // namespace evmm
