// Cache-line flushes and invpcid. Guest memory is host memory, coherent for every vCPU, so a
// flush has nothing to write back: the assist only makes the checks the CPU makes.
#include "vcpu/assist_ops.h"
#include "vcpu/x86_arch.h"
#include "vcpu/x86_linear.h"
#include "vcpu/x86_operand.h"

namespace evmm::assist_ops {

namespace {
constexpr uint64_t kCr4Pcide = 1ull << 17;
}

// clflush, clflushopt and clwb are checked like a byte load, on execute-only segments too
// (SDM vol. 2 CLFLUSH, CLFLUSHOPT, CLWB): segment, canonical form, and a page walk as a read.
x86::AssistResult<void> cache_line(const Step& s) {
  uint64_t linear = TRY_CTX(x86::operand_linear(s.d, s.next, s.next_rip, x86::SegmentAccess::Flush), s.what);
  x86::LinearMemory mem(s.env, s.next, false);
  TRY_CTX(mem.translate(linear, x86::AccessType::Read), s.what);
  return {};
}

// SDM vol. 2 INVPCID: the exceptions in the order the SDM lists them, then a flush of every
// cached translation, which covers each of the four types.
x86::AssistResult<void> invpcid(const Step& s) {
  x86::Fault gp{x86::Vector::GP, 0u, {}};
  if (uint8_t level = x86::cpl(s.next.regs, s.next.sregs); level != 0)
    return x86::raise(gp, "{}: at CPL {}", s.what, level);
  uint64_t linear = TRY_CTX(x86::operand_linear(s.d, s.next, s.next_rip, x86::SegmentAccess::Read), s.what);
  // The register operand is 64 bits in 64-bit mode and 32 bits elsewhere.
  uint64_t type = x86::gpr(s.next.regs, s.d.reg);
  if (!((s.next.sregs.efer & x86::kEferLma) && s.next.sregs.cs.l)) type &= 0xffffffff;
  if (type > 3) return x86::raise(gp, "{}: type {} is not 0 to 3", s.what, type);

  x86::LinearMemory mem(s.env, s.next, false);
  uint8_t desc[16];
  TRY_CTX(mem.read(linear, desc), s.what);
  uint64_t lo = 0, address = 0;
  for (int i = 0; i < 8; ++i) {
    lo |= uint64_t{desc[i]} << (8 * i);
    address |= uint64_t{desc[8 + i]} << (8 * i);
  }
  uint64_t pcid = lo & 0xfff;
  if (lo >> 12) return x86::raise(gp, "{}: descriptor bits 63:12 are {:#x}, not 0", s.what, lo >> 12);
  if (type <= 1 && pcid != 0 && !(s.next.sregs.cr4 & kCr4Pcide))
    return x86::raise(gp, "{}: PCID {:#x} with CR4.PCIDE clear", s.what, pcid);
  if (type == 0 && !x86::is_canonical(address, s.next.sregs))
    return x86::raise(gp, "{}: address {:#x} is not canonical", s.what, address);
  TRY_CTX(s.env.flush_tlb(), s.what);
  return {};
}

}  // namespace evmm::assist_ops
