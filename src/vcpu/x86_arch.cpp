#include "vcpu/x86_arch.h"

#include "vcpu/x86_fault.h"

#include <algorithm>

namespace evmm::x86 {

const char* to_string(Vector v) {
  switch (v) {
    case Vector::DE: return "DE";
    case Vector::DB: return "DB";
    case Vector::BP: return "BP";
    case Vector::UD: return "UD";
    case Vector::NM: return "NM";
    case Vector::DF: return "DF";
    case Vector::TS: return "TS";
    case Vector::NP: return "NP";
    case Vector::SS: return "SS";
    case Vector::GP: return "GP";
    case Vector::PF: return "PF";
    case Vector::MF: return "MF";
    case Vector::AC: return "AC";
    case Vector::XM: return "XM";
    case Vector::Count: break;
  }
  return "unknown";
}

Result<CodeSize> code_size(const kvm_sregs& sregs) {
  if ((sregs.efer & kEferLma) && sregs.cs.l) return CodeSize::Bits64;
  bool protected_mode = (sregs.cr0 & kCr0Pe) != 0;
  if (!protected_mode && sregs.cs.db) return make_error(EOPNOTSUPP, "real mode with a 32-bit code segment");
  return sregs.cs.db ? CodeSize::Bits32 : CodeSize::Bits16;
}

uint8_t cpl(const kvm_regs& regs, const kvm_sregs& sregs) {
  if (!(sregs.cr0 & kCr0Pe)) return 0;
  if (regs.rflags & rflags::kVM) return 3;
  return std::max<uint8_t>(sregs.ss.dpl & 3, sregs.cs.selector & 3);
}

__u64& gpr(kvm_regs& regs, unsigned n) {
  switch (n & 15) {
    case 0: return regs.rax;
    case 1: return regs.rcx;
    case 2: return regs.rdx;
    case 3: return regs.rbx;
    case 4: return regs.rsp;
    case 5: return regs.rbp;
    case 6: return regs.rsi;
    case 7: return regs.rdi;
    case 8: return regs.r8;
    case 9: return regs.r9;
    case 10: return regs.r10;
    case 11: return regs.r11;
    case 12: return regs.r12;
    case 13: return regs.r13;
    case 14: return regs.r14;
    default: return regs.r15;
  }
}

bool is_canonical(uint64_t linear, const kvm_sregs& sregs) {
  int bits = (sregs.cr4 & kCr4La57) ? 57 : 48;
  // Shift the sign bit to the top and back; a canonical address survives unchanged.
  int64_t extended = static_cast<int64_t>(linear << (64 - bits)) >> (64 - bits);
  return static_cast<uint64_t>(extended) == linear;
}

}  // namespace evmm::x86
