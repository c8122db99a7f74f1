// Just enough of the x86 instruction decoder for the emulation assists: legacy prefixes, REX and
// the opcodes listed in AssistKind. Anything else is refused, never guessed at.
#pragma once

#include <cstdint>
#include <span>

#include "base/result.h"
#include "vcpu/assist.h"
#include "vcpu/x86_arch.h"

namespace evmm::x86 {

// The architectural limit on instruction length (SDM vol. 2 2.3.11); longer raises #GP.
inline constexpr size_t kMaxInsnLength = 15;

struct DecodedInsn {
  AssistKind kind;
  uint8_t length;        // bytes, prefixes included
  uint8_t operand_bits;  // 16, 32 or 64, after 66 and REX.W
  uint8_t reg;           // ModRM.reg extended by REX.R (destination of popcnt/lzcnt/tzcnt)
  uint8_t rm;            // ModRM.rm extended by REX.B (source; rdpid's destination)
  uint8_t vector;        // int n; 3 for int3
  // FPU family: the opcode byte and ModRM (x87 register forms), REX.W (fxsave64 & co.); memory
  // forms are register-indirect through rm and use DS.
  uint8_t opcode;
  uint8_t modrm;
  bool rex_w;
  bool vex;  // vldmxcsr/vstmxcsr (VEX.L0.0F AE /2, /3)
};

// Decodes the instruction at the start of bytes (at most kMaxInsnLength of them are looked at).
// EINVAL "truncated instruction ..." when bytes end before the instruction does, or "longer than
// 15 bytes"; EOPNOTSUPP "unsupported instruction <hex>" for anything the assists do not complete.
Result<DecodedInsn> decode(std::span<const uint8_t> bytes, CodeSize mode);

}  // namespace evmm::x86
