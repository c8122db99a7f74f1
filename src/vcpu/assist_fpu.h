// The FPU family's part of complete_instruction: fetches the guest's XSAVE area and XCR0, runs
// the x86_fpu.h function for the decoded instruction and writes back what changed.
#pragma once

#include "vcpu/assist.h"
#include "vcpu/x86_arch.h"
#include "vcpu/x86_decode.h"
#include "vcpu/x86_fault.h"

namespace evmm {

// True for the AssistKinds complete_fpu handles (Fwait included).
bool is_fpu_kind(AssistKind k);

// Runs d against next (registers: RAX/RDX for xgetbv and fnstsw, RFLAGS for fcomi/fcmov) and the
// FPU state behind env. Memory operands take every addressing form, through their segment and the
// guest's page tables (x86_operand.h, x86_linear.h); next_rip is for RIP-relative ones.
x86::AssistResult<void> complete_fpu(const x86::DecodedInsn& d, CpuState& next, AssistEnv& env, uint64_t next_rip);

}  // namespace evmm
