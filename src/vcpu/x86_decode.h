// The instruction decoder of the emulation assists: Zydis 4 (Debian's libzydis-dev) decodes every
// prefix, ModRM/SIB and mode form; this header turns its answer into evmm's own DecodedInsn, so no
// Zydis type leaves x86_decode.cpp. Instructions that are not in AssistKind are refused, never guessed at.
//
// Errors:
//   EINVAL      "truncated instruction <hex>" (the bytes end before the instruction does) or
//               "instruction longer than 15 bytes <hex>"
//   EINVAL+#UD  a LOCK prefix on an instruction that does not accept one (SDM vol. 2 LOCK)
//   EOPNOTSUPP  "unsupported instruction <hex>": anything the assists do not complete
#pragma once

#include <array>
#include <cstdint>
#include <optional>
#include <span>

#include "base/result.h"
#include "vcpu/assist.h"
#include "vcpu/x86_arch.h"
#include "vcpu/x86_fault.h"

namespace evmm::x86 {

// The architectural limit on instruction length (SDM vol. 2 2.3.11); longer raises #GP.
inline constexpr size_t kMaxInsnLength = 15;

// Segment registers in their encoding order (SDM vol. 2 3.1.1.3, Sreg).
enum class SegReg : uint8_t { ES, CS, SS, DS, FS, GS };

// "No register" for MemRef's base and index.
inline constexpr uint8_t kNoReg = 0xff;

// A memory operand as the instruction names it (SDM vol. 1 3.7.5): segment:[base + index*scale + disp].
struct MemRef {
  SegReg segment;      // after overrides and the SS default for rsp/rbp bases
  uint8_t base;        // GPR number (ModRM/REX numbering) or kNoReg
  uint8_t index;       // GPR number or kNoReg
  uint8_t scale;       // 1, 2, 4 or 8
  int64_t disp;        // sign-extended displacement
  bool rip_relative;   // base is the next instruction's RIP (64-bit mode only)
  uint16_t size;       // bytes the instruction accesses there
};

// An SSE/AVX/AVX-512/BMI instruction the assists replay on the host CPU (x86_simd.h), as the
// decoder prepared it: the guest's bytes with segment-override and address-size prefixes dropped
// and the memory operand, if any, turned into a RIP-relative disp32 for the host's buffer.
struct ReplayInsn {
  enum class Encoding : uint8_t { Legacy, Vex, Evex };
  std::array<uint8_t, kMaxInsnLength + 4> bytes{};  // + 4: a disp8 may become a disp32
  uint8_t length = 0;
  uint8_t disp_offset = 0;  // where the disp32 of the memory operand goes (memory forms only)
  Encoding encoding = Encoding::Legacy;
  bool vector = false;      // names XMM/YMM/ZMM or mask registers: the #UD and #NM rules apply
  bool avx512 = false;      // EVEX, or names a mask register: needs XCR0's opmask and ZMM components
  bool uses_mxcsr = false;  // a floating-point operation, which may raise SIMD exceptions
  bool mem_read = false, mem_write = false;
  bool masked = false;      // the memory access is per element under a mask (EVEX {k}, vmaskmov)
  uint8_t align = 1;        // the memory operand must be aligned to this (#GP(0) otherwise)
  const char* mnemonic = "";
};

struct DecodedInsn {
  AssistKind kind;
  uint8_t length;        // bytes, prefixes included
  uint8_t operand_bits;  // 16, 32 or 64, after 66 and REX.W
  uint8_t address_bits;  // 16, 32 or 64, after 67
  uint8_t reg;           // register operand (ModRM.reg with REX.R): popcnt's destination, invpcid's type
  uint8_t rm;            // register form of ModRM.rm with REX.B: popcnt's source, rdpid's destination
  uint8_t vector;        // int n; 3 for int3, 1 for int1
  bool lock;             // a LOCK prefix was given (and is allowed)
  // The FPU family: the last opcode byte and ModRM (the x87 register forms, D8..DF), REX.W
  // (fxsave64 and the other 64-bit forms) and VEX (vldmxcsr, vstmxcsr).
  uint8_t opcode;
  uint8_t modrm;
  bool rex_w;
  bool vex;
  std::optional<MemRef> mem;  // the memory operand, if the instruction has one
  std::optional<ReplayInsn> replay;  // kinds Sse, Avx, Avx512 and Bmi
};

// Which decoder mode applies: 64-bit, compatibility mode (IA-32e with a 32- or 16-bit CS),
// legacy protected mode, or real mode (SDM vol. 3 5.2.1).
enum class DecodeMode : uint8_t { Long64, Compat32, Compat16, Legacy32, Legacy16, Real16 };
Result<DecodeMode> decode_mode(const kvm_sregs& sregs);
// The legacy (non-IA-32e) mode of a code size: what the fuzz target and older callers name.
DecodeMode decode_mode(CodeSize size);

// Decodes the instruction at the start of bytes (at most kMaxInsnLength of them are looked at).
AssistResult<DecodedInsn> decode(std::span<const uint8_t> bytes, DecodeMode mode);
inline AssistResult<DecodedInsn> decode(std::span<const uint8_t> bytes, CodeSize size) {
  return decode(bytes, decode_mode(size));
}

}  // namespace evmm::x86
