// cmpxchg8b and cmpxchg16b (SDM vol. 2 CMPXCHG8B/CMPXCHG16B), locked or not. Other vCPUs run
// while evmm completes the instruction, so an aligned operand is compared and exchanged with one
// atomic operation on guest memory, whatever the prefix: an unlocked cmpxchg may be atomic.
#include "vcpu/assist_ops.h"
#include "vcpu/x86_arch.h"
#include "vcpu/x86_linear.h"
#include "vcpu/x86_operand.h"

namespace evmm::assist_ops {

namespace {
constexpr uint64_t kPageSize = 4096;
using Words16 = GuestSlice::Words16;
}  // namespace

x86::AssistResult<void> cmpxchg(const Step& s) {
  const bool wide = s.d.kind == AssistKind::Cmpxchg16b;
  const unsigned size = wide ? 16 : 8;
  kvm_regs& regs = s.next.regs;
  // The destination is written back even when the compare fails, so it is a write for every check.
  uint64_t linear = TRY_CTX(x86::operand_linear(s.d, s.next, s.next_rip, x86::SegmentAccess::Write), s.what);
  if (wide && linear % 16 != 0)
    return x86::raise(x86::Fault{x86::Vector::GP, 0u, {}}, "{}: operand {:#x} is not 16-byte aligned", s.what, linear);

  const Words16 expected = wide ? Words16{regs.rax, regs.rdx} : Words16{(regs.rax & 0xffffffff) | regs.rdx << 32, 0};
  const Words16 desired = wide ? Words16{regs.rbx, regs.rcx} : Words16{(regs.rbx & 0xffffffff) | regs.rcx << 32, 0};
  x86::LinearMemory mem(s.env, s.next, false);
  Words16 old{};
  bool done = false;
  if ((linear & (kPageSize - 1)) + size <= kPageSize) {
    uint64_t gpa = TRY_CTX(mem.translate(linear, x86::AccessType::Write), s.what);
    auto slice = s.env.memory().slice(GuestAddress(gpa), size);
    if (!slice) return make_error(EFAULT, "{}: operand {:#x} maps to {:#x}, which is not guest RAM", s.what, linear, gpa);
    if (wide) {
      old = TRY_CTX(slice->compare_exchange_16(0, expected, desired), s.what);
      done = true;
    } else if (slice->atomic_ok<uint64_t>(0)) {
      old.lo = TRY_CTX(slice->compare_exchange<uint64_t>(0, expected.lo, desired.lo, std::memory_order_seq_cst), s.what);
      done = true;
    }
  }
  if (!done) {
    // A cmpxchg8b operand that is not 8-byte aligned (possibly across a page) cannot be one host
    // atomic: compare and store separately. Only the store of a successful compare is made, so a
    // failed one does not write back a value another vCPU may have changed meanwhile.
    TRY_CTX(mem.check(linear, size, x86::AccessType::Write), s.what);
    old.lo = TRY_CTX(mem.read_le<uint64_t>(linear), s.what);
    if (old == expected) {
      TRY_CTX(mem.stage(linear, desired.lo, 8), s.what);
      TRY_CTX(mem.commit(), s.what);
    }
  }

  // ZF says whether the exchange happened; the other flags are unchanged.
  if (old == expected) {
    regs.rflags |= x86::rflags::kZF;
  } else {
    regs.rflags &= ~x86::rflags::kZF;
    if (wide) {
      regs.rax = old.lo;
      regs.rdx = old.hi;
    } else {
      write_register(regs, 0, old.lo & 0xffffffff, 32);
      write_register(regs, 2, old.lo >> 32, 32);
    }
  }
  return {};
}

}  // namespace evmm::assist_ops
