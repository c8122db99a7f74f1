// Software interrupt delivery (int3, int n) through the guest's IDT or real-mode IVT, for the
// emulation assists. Follows the INT n pseudocode of the SDM, vol. 2, for the cases a CPL 0 guest
// meets; the rest (task gates, privilege changes, virtual-8086 mode) is refused with EOPNOTSUPP.
#pragma once

#include <cstdint>

#include "base/result.h"
#include "vcpu/assist.h"
#include "vcpu/x86_fault.h"

namespace evmm::x86 {

// Delivers `vector` as a software interrupt, pushing next_rip as the return address. On success
// cpu holds the handler's entry state and the frame is in guest memory; on error neither changed.
// EINVAL with the fault where the CPU would raise #GP, #NP or #SS (vector beyond the IDT limit,
// gate not present or of a bad type, bad code segment, stack outside its segment); EFAULT when a table or
// the stack is not mapped to guest RAM; EOPNOTSUPP for the cases listed above.
// privileged: int1 (icebp), a privileged software exception, skips the gate's DPL check (SDM vol. 3 6.12.1.1).
AssistResult<void> deliver_software_interrupt(CpuState& cpu, AssistEnv& env, uint8_t vector, uint64_t next_rip,
                                              bool privileged = false);

}  // namespace evmm::x86
