// The return from an interrupt (iret, iretd) in protected mode, for the emulation assists: KVM's
// emulator on hosts like ours completes it only in real mode, and the 64-bit iretq is run without
// it. Follows the IRET/IRETD pseudocode of the SDM, vol. 2, and vol. 3 6.12 and 5.8.
#pragma once

#include "base/result.h"
#include "vcpu/assist.h"
#include "vcpu/x86_fault.h"

namespace evmm::x86 {

// Completes an iret with operand_bits 16 or 32 (cf, with or without 66) in protected mode: pops
// EIP, CS and EFLAGS through SS, and for a return to an outer privilege level ESP and SS as well.
// On success cpu holds the state after the return (RIP, RSP, RFLAGS, CS, SS, and ES/DS/FS/GS
// nulled when the new CPL may not use them) and the accessed bits of the loaded descriptors are
// set; on error neither cpu nor guest memory changed.
//   EINVAL      with the fault the CPU would raise: #SS(0) for a pop outside the stack segment,
//               #GP(0), #GP(selector), #NP(selector) and #SS(selector) for the CS and SS checks
//   EFAULT      the stack or a descriptor table is not guest RAM (with the #PF when unmapped)
//   EOPNOTSUPP  what evmm does not do: a nested-task return (EFLAGS.NT), a return to virtual-8086
//               mode, iret in real mode (KVM's emulator does it), virtual-8086 or IA-32e mode,
//               or another operand size
AssistResult<void> complete_iret(CpuState& cpu, AssistEnv& env, unsigned operand_bits);

}  // namespace evmm::x86
