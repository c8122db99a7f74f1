#include "vcpu/assist_fpu.h"

#include <algorithm>

#include "vcpu/x86_fpu.h"
#include "vcpu/x86_linear.h"
#include "vcpu/x86_operand.h"
#include "vcpu/x86_simd.h"

namespace evmm {

using x86::CodeSize;

bool is_fpu_kind(AssistKind k) {
  switch (k) {
    case AssistKind::Fwait: case AssistKind::Ldmxcsr: case AssistKind::Stmxcsr: case AssistKind::Fxsave:
    case AssistKind::Fxrstor: case AssistKind::Xsave: case AssistKind::Xsaveopt: case AssistKind::Xrstor:
    case AssistKind::Xgetbv: case AssistKind::Xsetbv: case AssistKind::X87: case AssistKind::Sse:
    case AssistKind::Avx: case AssistKind::Avx512: case AssistKind::Bmi:
      return true;
    default:
      return false;
  }
}

namespace {

void write32(__u64& r, uint64_t v) { r = v & 0xffffffff; }

}  // namespace

x86::AssistResult<void> complete_fpu(const x86::DecodedInsn& d, CpuState& next, AssistEnv& env, uint64_t next_rip) {
  // The memory operand's linear address, after the segment checks for the access (x86_operand.h).
  auto operand = [&](x86::SegmentAccess access) -> x86::AssistResult<uint64_t> {
    if (!d.mem) return make_error(EOPNOTSUPP, "{} without a memory operand", to_string(d.kind));
    return x86::operand_linear(d, next, next_rip, access);
  };
  using Access = x86::SegmentAccess;
  auto area = TRY_CTX(env.read_fpu(), "reading the FPU state");
  x86::FpuState s = TRY(x86::FpuState::create(std::move(area)));
  uint64_t xcr0 = TRY_CTX(env.read_xcr0(), "reading XCR0");
  x86::FpuCpu c = x86::fpu_cpu(next, xcr0);
  x86::LinearMemory mem(env, next, false);
  uint64_t edx_eax = (next.regs.rdx & 0xffffffff) << 32 | (next.regs.rax & 0xffffffff);
  uint32_t ecx = static_cast<uint32_t>(next.regs.rcx);
  bool changed = false;
  switch (d.kind) {
    case AssistKind::Fwait:
      TRY(x86::fwait(s, c));
      break;
    case AssistKind::Ldmxcsr:
      TRY(x86::ldmxcsr(s, c, mem, TRY(operand(Access::Read)), d.vex));
      changed = true;
      break;
    case AssistKind::Stmxcsr:
      TRY(x86::stmxcsr(s, c, mem, TRY(operand(Access::Write)), d.vex));
      break;
    case AssistKind::Fxsave:
      TRY(x86::fxsave(s, c, mem, TRY(operand(Access::Write)), d.rex_w));
      break;
    case AssistKind::Fxrstor:
      TRY(x86::fxrstor(s, c, mem, TRY(operand(Access::Read)), d.rex_w));
      changed = true;
      break;
    case AssistKind::Xsave:
    case AssistKind::Xsaveopt:  // saved in full: x86_fpu.h says why the SDM allows it
      TRY(x86::xsave(s, c, mem, TRY(operand(Access::Write)), edx_eax, d.rex_w));
      break;
    case AssistKind::Xrstor:
      TRY(x86::xrstor(s, c, mem, TRY(operand(Access::Read)), edx_eax, d.rex_w));
      changed = true;
      break;
    case AssistKind::Xgetbv: {
      uint64_t v = TRY(x86::xgetbv(s, c, ecx));
      write32(next.regs.rax, v);
      write32(next.regs.rdx, v >> 32);
      break;
    }
    case AssistKind::Xsetbv: {
      uint64_t v = TRY(x86::xsetbv(s, c, ecx, edx_eax));
      // KVM refuses an XCR0 the guest's CPUID does not enumerate (kvm_set_xcr): the guest's CPU
      // would not support it either, so that is its #GP(0).
      auto wrote = env.write_xcr0(v);
      if (!wrote && wrote.error().code() == EINVAL)
        return x86::raise(x86::Fault{x86::Vector::GP, 0u, {}}, "xsetbv XCR0 {:#x}: {}", v, wrote.error().context());
      TRY(std::move(wrote));
      break;
    }
    case AssistKind::X87:
    {
      uint64_t rax = next.regs.rax, rflags = next.regs.rflags;
      TRY(x86::x87_register_op(s, c, d.opcode, d.modrm, rax, rflags));
      next.regs.rax = rax;
      next.regs.rflags = rflags;
      changed = true;
      break;
    }
    case AssistKind::Sse:
    case AssistKind::Avx:
    case AssistKind::Avx512:
    case AssistKind::Bmi: {
      if (!d.replay) return make_error(EINVAL, "{} without its replay encoding", to_string(d.kind));
      // #UD and #NM come before the operand's own faults (SDM vol. 2 2.4, exception classes).
      TRY(x86::simd_check(c, *d.replay));
      std::optional<uint64_t> linear;
      if (d.mem) linear = TRY(operand(d.replay->mem_write ? Access::Write : Access::Read));
      changed = TRY(x86::simd_replay(s, c, *d.replay, mem, linear, d.mem ? d.mem->size : 0, next.regs));
      break;
    }
    default:
      return make_error(EOPNOTSUPP, "{} is not an FPU instruction", to_string(d.kind));
  }
  if (changed) {
    // KVM_SET_XSAVE takes MXCSR from the area only when XSTATE_BV has SSE or AVX (the kernel's
    // copy_uabi_to_xstate); mark SSE in use so that a non-initial MXCSR is not dropped. Its XMM
    // bytes hold the initial zeros then, so the registers read the same.
    uint64_t bv = s.xstate_bv();
    if (s.mxcsr() != 0x1f80 && !(bv & (x86::xfeature::kSse | x86::xfeature::kAvx))) {
      std::fill_n(s.bytes().begin() + x86::FpuState::kXmm0, 256, uint8_t{0});
      s.set(x86::FpuState::kXstateBv, bv | x86::xfeature::kSse, 8);
    }
    TRY_CTX(env.write_fpu(s.bytes()), "writing the FPU state");
  }
  return {};
}

}  // namespace evmm
