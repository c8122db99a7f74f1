// The architectural state evmm gives each vCPU before it first runs.
#pragma once

#include <cstdint>

#include "base/result.h"
#include "kvm/system.h"
#include "kvm/vcpu_fd.h"

namespace evmm {

// KVM's supported CPUID, specialised for vCPU `id` of `cpus`: APIC IDs in leaves 1, 0xB, 0x1F and
// 0x8000001E, and a topology of one package with `cpus` cores of one thread each.
CpuidTable cpuid_for_vcpu(const CpuidTable& supported, unsigned id, unsigned cpus);

// CPUID, the MSRs a guest needs, the FPU reset state and the LAPIC LINT pins (LINT0 ExtINT, LINT1
// NMI, as firmware leaves them). Every vCPU gets this; APs then wait for INIT/SIPI.
Result<void> configure_vcpu(const VcpuFd& vcpu, const CpuidTable& supported, unsigned id, unsigned cpus);

// Registers, segments and control registers a vCPU starts from; boot/ fills one for an image's
// entry, and real_mode_state() for a waking vector or INIT.
struct EntryState {
  kvm_segment cs{};
  kvm_segment data{};  // DS, ES, FS, GS and SS alike
  kvm_dtable gdt{};
  kvm_dtable idt{};
  uint64_t cr0 = 0, cr2 = 0, cr3 = 0, cr4 = 0, efer = 0;
  kvm_regs regs{};
};
// Loads `state`; the segment registers it does not name (LDT, TR) and the APIC base keep their values.
Result<void> apply_entry_state(const VcpuFd& vcpu, const EntryState& state);
// Real mode at cs:ip, with protection and paging off, data segments 0 and IF clear.
EntryState real_mode_state(uint16_t cs, uint16_t ip);

// Real mode at cs:ip, as firmware leaves a CPU when it jumps to an ACPI waking vector: protection
// and paging off, data segments 0, IF clear.
Result<void> set_real_mode_state(const VcpuFd& vcpu, uint16_t cs, uint16_t ip);
// The registers after INIT (then set MpState::Stopped to wait for a SIPI): an AP after S3 resume.
Result<void> set_init_registers(const VcpuFd& vcpu);

}  // namespace evmm
