// The few pieces of x86 architectural state the emulation assists read: control-register bits,
// RFLAGS bits, the code size of the current mode, the CPL and the general-purpose registers.
#pragma once

#include "kvm/kvm_uapi.h"

#include <cstdint>

#include "base/result.h"

namespace evmm::x86 {

// Bit masks from the SDM, vol. 1 3.4.3 (RFLAGS) and vol. 3 2.5 (control registers).
namespace rflags {
inline constexpr uint64_t kCF = 1ull << 0;
inline constexpr uint64_t kPF = 1ull << 2;
inline constexpr uint64_t kAF = 1ull << 4;
inline constexpr uint64_t kZF = 1ull << 6;
inline constexpr uint64_t kSF = 1ull << 7;
inline constexpr uint64_t kTF = 1ull << 8;
inline constexpr uint64_t kIF = 1ull << 9;
inline constexpr uint64_t kDF = 1ull << 10;
inline constexpr uint64_t kOF = 1ull << 11;
inline constexpr uint64_t kIOPL = 3ull << 12;
inline constexpr uint64_t kNT = 1ull << 14;
inline constexpr uint64_t kRF = 1ull << 16;
inline constexpr uint64_t kVM = 1ull << 17;
inline constexpr uint64_t kAC = 1ull << 18;
inline constexpr uint64_t kVIF = 1ull << 19;
inline constexpr uint64_t kVIP = 1ull << 20;
inline constexpr uint64_t kID = 1ull << 21;
}  // namespace rflags

inline constexpr uint64_t kCr0Pe = 1ull << 0;
inline constexpr uint64_t kCr0Pg = 1ull << 31;
inline constexpr uint64_t kCr4La57 = 1ull << 12;
inline constexpr uint64_t kEferLma = 1ull << 10;

inline constexpr uint32_t kMsrTscAux = 0xC0000103;

// The default operand and address size of the code being run (SDM vol. 3 5.2.1).
enum class CodeSize : uint8_t { Bits16 = 16, Bits32 = 32, Bits64 = 64 };

// 64-bit when EFER.LMA and CS.L; 32-bit when protected (or compatibility) mode and CS.D;
// 16-bit in real mode and 16-bit protected mode. Real mode with a 32-bit CS cache ("big real"
// code) is refused with EOPNOTSUPP: evmm's guests never run it.
Result<CodeSize> code_size(const kvm_sregs& sregs);

// The mask an instruction pointer of this size wraps at.
constexpr uint64_t ip_mask(CodeSize s) {
  return s == CodeSize::Bits64 ? ~0ull : s == CodeSize::Bits32 ? 0xffffffffull : 0xffffull;
}

// The current privilege level. KVM reports it as SS.DPL (vmx_get_cpl, svm's save.cpl); CS.RPL
// agrees outside of transitions, and the larger is taken so that a mismatch is never read as 0.
// Virtual-8086 mode runs at CPL 3; real mode at 0.
uint8_t cpl(const kvm_regs& regs, const kvm_sregs& sregs);

// General-purpose register n in the ModRM/REX numbering: rax rcx rdx rbx rsp rbp rsi rdi r8..r15.
__u64& gpr(kvm_regs& regs, unsigned n);

// True when the top bits of a linear address are a sign extension of bit 47 (or 56 with LA57).
bool is_canonical(uint64_t linear, const kvm_sregs& sregs);

}  // namespace evmm::x86
