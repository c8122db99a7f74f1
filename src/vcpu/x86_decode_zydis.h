// Internal to the decoder's .cpp files (x86_decode.cpp, x86_decode_replay.cpp): the pieces that
// take Zydis types. Nothing outside them includes this header, so no Zydis type leaves them.
#pragma once

#include <Zydis/Zydis.h>

#include <cstdint>
#include <optional>
#include <span>

#include "vcpu/x86_decode.h"

namespace evmm::x86::zydis {

// Register number in the ModRM/REX numbering, for general-purpose registers of any width but 8.
std::optional<uint8_t> gpr_number(ZydisRegister r);

// An explicit memory operand as evmm's MemRef; EOPNOTSUPP for VSIB, far pointers, odd segments.
AssistResult<MemRef> memory_operand(const ZydisDecodedOperand& op, std::span<const uint8_t> bytes);

// The instructions replayed on the host (kinds Sse, Avx, Avx512, Bmi; x86_simd.h): a DecodedInsn
// with its ReplayInsn, or EOPNOTSUPP when the instruction is not one (the caller then tries its
// own table), or a fault the decoding already shows. 64-bit mode only.
AssistResult<DecodedInsn> decode_replay(const ZydisDecodedInstruction& insn, const ZydisDecodedOperand* ops,
                                        std::span<const uint8_t> bytes);

}  // namespace evmm::x86::zydis
