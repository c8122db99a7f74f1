// SSE, AVX, AVX-512 and BMI instructions completed by "native replay": the host CPU runs the
// guest's instruction itself, with the guest's general registers (all but RSP), arithmetic
// flags and x87/SSE/AVX/AVX-512 state loaded, and its memory operand staged in a host buffer.
//
// The decoder (x86_decode_replay.cpp) decides what may run: an allow-list of ISA extensions the
// host has, operands only of the kinds the replay loads, at most one explicit memory operand,
// which it re-encodes as [rip + disp32] pointing at the buffer (segment and address-size
// prefixes dropped). This file checks the rules the CPU applies before the instruction runs
// (SDM vol. 2 2.4-2.8, the exception classes: #UD for CR0.EM, CR4.OSFXSR, CR4.OSXSAVE and XCR0;
// #NM for CR0.TS; #GP(0) for a misaligned operand that must be aligned), reads the operand
// through the guest's page tables, replays, then writes back the registers, the FPU state and,
// for stores, the operand. On a fault nothing has changed but accessed/dirty flags.
//
// The host copy runs with every SIMD floating-point exception masked and MXCSR's flags clear, so
// it cannot raise #XM in evmm; the flags it comes back with are those the instruction raised.
// Not modelled (EOPNOTSUPP): one of those the guest's MXCSR unmasks, where the CPU would raise
// #XM (the kernel runs with all masked); a masked access (EVEX {k}, vmaskmov) whose operand touches a page
// that does not translate, since which elements are masked off decides whether the CPU faults.
// A masked store writes exactly the bytes the instruction writes: it is replayed twice, on two
// different fills of the buffer, and the bytes that come out the same in both are the written ones.
#pragma once

#include "kvm/kvm_uapi.h"

#include <cstdint>
#include <optional>

#include "vcpu/x86_decode.h"
#include "vcpu/x86_fault.h"
#include "vcpu/x86_fpu.h"
#include "vcpu/x86_linear.h"

namespace evmm::x86 {

// The rules checked before the operand is even computed: #UD, then #NM.
AssistResult<void> simd_check(const FpuCpu& c, const ReplayInsn& r);

// Runs r (simd_check first). linear: the memory operand's linear address, segment-checked for the access, with its
// size in bytes (r has a memory operand exactly when linear is set). regs: in and out, every
// general register but RSP, and OF SF ZF AF PF CF of RFLAGS. Returns whether s changed.
AssistResult<bool> simd_replay(FpuState& s, const FpuCpu& c, const ReplayInsn& r, LinearMemory& mem,
                               std::optional<uint64_t> linear, unsigned size, kvm_regs& regs);

}  // namespace evmm::x86
