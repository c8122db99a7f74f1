// popcnt, lzcnt and tzcnt with a register or memory source: SDM vol. 2 POPCNT, LZCNT, TZCNT.
#include <algorithm>
#include <bit>

#include "vcpu/assist_ops.h"
#include "vcpu/x86_arch.h"
#include "vcpu/x86_linear.h"
#include "vcpu/x86_operand.h"

namespace evmm::assist_ops {

namespace fl = x86::rflags;

void write_register(kvm_regs& regs, unsigned n, uint64_t value, unsigned bits) {
  __u64& r = x86::gpr(regs, n);
  if (bits == 16) r = (r & ~0xffffull) | (value & 0xffff);
  else if (bits == 32) r = value & 0xffffffff;
  else r = value;
}

x86::AssistResult<void> bit_count(const Step& s) {
  const x86::DecodedInsn& d = s.d;
  kvm_regs& regs = s.next.regs;
  unsigned bits = d.operand_bits;
  uint64_t mask = bits == 64 ? ~0ull : (1ull << bits) - 1;
  uint64_t src;
  if (d.mem) {
    uint64_t linear = TRY_CTX(x86::operand_linear(d, s.next, s.next_rip, x86::SegmentAccess::Read), s.what);
    x86::LinearMemory mem(s.env, s.next, false);
    // Exactly the operand's bytes, so that a page boundary just past it cannot fault.
    uint8_t b[8] = {};
    TRY_CTX(mem.read(linear, std::span(b, bits / 8)), s.what);
    src = 0;
    for (unsigned i = 0; i < bits / 8; ++i) src |= uint64_t{b[i]} << (8 * i);
  } else {
    src = x86::gpr(regs, d.rm) & mask;
  }
  uint64_t result;
  uint64_t flags = regs.rflags;
  if (d.kind == AssistKind::Popcnt) {
    result = static_cast<uint64_t>(std::popcount(src));
    flags &= ~(fl::kOF | fl::kSF | fl::kZF | fl::kAF | fl::kCF | fl::kPF);
    if (src == 0) flags |= fl::kZF;
  } else {
    if (d.kind == AssistKind::Lzcnt) result = static_cast<uint64_t>(std::countl_zero(src)) - (64 - bits);
    else result = std::min<uint64_t>(static_cast<uint64_t>(std::countr_zero(src)), bits);
    flags &= ~(fl::kCF | fl::kZF);
    if (src == 0) flags |= fl::kCF;
    if (result == 0) flags |= fl::kZF;
  }
  write_register(regs, d.reg, result, bits);
  regs.rflags = flags;
  return {};
}

}  // namespace evmm::assist_ops
