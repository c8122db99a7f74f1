// Memory operands of the emulation assists: effective address (SDM vol. 1 3.7.5), then segment
// (SDM vol. 3 3.4.5, 5.3) to linear address, with the faults the CPU raises on the way.
//
// Rules:
//   - The effective address is base + index*scale + disp wrapped at the address size (16, 32 or
//     64 bits); RIP-relative adds the next instruction's RIP.
//   - In 64-bit mode only FS and GS have a base (kvm_sregs carries it) and no limit is checked;
//     the first and the last byte must be canonical (SDM vol. 1 3.3.7.1).
//   - Outside 64-bit mode the segment must be usable and of a type that allows the access, and
//     every byte must lie within its limit (expand-down segments too); the linear address wraps
//     at 2^32.
//   - Faults are #GP(0), or #SS(0) when the segment is SS.
#pragma once

#include <cstdint>

#include "vcpu/assist.h"
#include "vcpu/x86_decode.h"
#include "vcpu/x86_fault.h"

namespace evmm::x86 {

// What an instruction does at the address, for the segment checks: clflush may name an
// execute-only code segment (SDM vol. 2 CLFLUSH), which a read may not.
enum class SegmentAccess : uint8_t { Read, Write, Flush };

uint64_t effective_address(const MemRef& m, const kvm_regs& regs, unsigned address_bits, uint64_t next_rip);

// The linear address of an access of m.size bytes at effective address ea through m.segment.
AssistResult<uint64_t> linear_address(const MemRef& m, uint64_t ea, const CpuState& cpu, SegmentAccess access);

// Both steps for the memory operand of d.
AssistResult<uint64_t> operand_linear(const DecodedInsn& d, const CpuState& cpu, uint64_t next_rip,
                                      SegmentAccess access);

}  // namespace evmm::x86
