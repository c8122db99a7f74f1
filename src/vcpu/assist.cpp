#include "vcpu/assist.h"

#include <algorithm>
#include <bit>

#include "vcpu/assist_ops.h"
#include "vcpu/assist_fpu.h"
#include "vcpu/x86_arch.h"
#include "vcpu/x86_decode.h"
#include "vcpu/x86_interrupt.h"
#include "vcpu/x86_iret.h"

// What the assists do not model, because evmm's guests do not need it:
// - A single-step trap (RFLAGS.TF) after a completed instruction is not raised; RF is cleared, as
//   on completion of any instruction.
// - Alignment checking (#AC) is not applied to data accesses (popcnt and the others from memory,
//   a misaligned cmpxchg8b at CPL 3 with CR0.AM and RFLAGS.AC); the frames pushed at CPL 0 are
//   supervisor accesses, to which it does not apply (SDM vol. 3 6.15, interrupt 17).
// - A cmpxchg8b operand that is not 8-byte aligned is compared and stored without one atomic
//   operation (assist_cmpxchg.cpp); aligned cmpxchg8b and every cmpxchg16b are atomic.
// - CPUID feature bits (SMAP, RDPID, POPCNT, ABM, BMI1, CX16, CLWB, INVPCID) are not consulted:
//   KVM here reports the host's, and KVM only hands over an instruction the host CPU knows.
// - lzcnt/tzcnt leave OF, SF, AF and PF unchanged (the SDM calls them undefined).
// - A 32-bit register write zero-extends in every mode, as KVM's own emulator does; outside 64-bit
//   mode the SDM leaves the upper half undefined.
// - The interrupt shadow (sti, mov ss) is the caller's business: these registers carry none.
// - Paging: protection keys, 32-bit and PAE paging (this host refuses them), and the TLB: every
//   access walks the guest's current tables (x86_paging.h).
// - Segment checks on memory operands use the cached descriptors in kvm_sregs as the CPU does;
//   virtual-8086 mode is treated like real mode for them.
// - The replayed SIMD instructions (x86_simd.h): #XM for an exception MXCSR unmasks, and a masked
//   access to a page that does not translate, are refused rather than modelled.

namespace evmm {

const char* to_string(AssistKind k) {
  switch (k) {
    case AssistKind::Int3: return "int3";
    case AssistKind::IntN: return "int";
    case AssistKind::Clac: return "clac";
    case AssistKind::Stac: return "stac";
    case AssistKind::Fwait: return "fwait";
    case AssistKind::Rdpid: return "rdpid";
    case AssistKind::Popcnt: return "popcnt";
    case AssistKind::Lzcnt: return "lzcnt";
    case AssistKind::Tzcnt: return "tzcnt";
    case AssistKind::Int1: return "int1";
    case AssistKind::Cmpxchg8b: return "cmpxchg8b";
    case AssistKind::Cmpxchg16b: return "cmpxchg16b";
    case AssistKind::Clflush: return "clflush";
    case AssistKind::Clflushopt: return "clflushopt";
    case AssistKind::Clwb: return "clwb";
    case AssistKind::Invpcid: return "invpcid";
    case AssistKind::Iret: return "iret";
    case AssistKind::Lsl: return "lsl";
    case AssistKind::Lar: return "lar";
    case AssistKind::Ldmxcsr: return "ldmxcsr";
    case AssistKind::Stmxcsr: return "stmxcsr";
    case AssistKind::Fxsave: return "fxsave";
    case AssistKind::Fxrstor: return "fxrstor";
    case AssistKind::Xsave: return "xsave";
    case AssistKind::Xsaveopt: return "xsaveopt";
    case AssistKind::Xrstor: return "xrstor";
    case AssistKind::Xgetbv: return "xgetbv";
    case AssistKind::Xsetbv: return "xsetbv";
    case AssistKind::X87: return "x87";
    case AssistKind::Sse: return "sse";
    case AssistKind::Avx: return "avx";
    case AssistKind::Avx512: return "avx512";
    case AssistKind::Bmi: return "bmi";
    case AssistKind::Count: break;
  }
  return "unknown";
}

std::string format_bytes(std::span<const uint8_t> bytes) {
  std::string s;
  s.reserve(bytes.size() * 3);
  for (uint8_t b : bytes) {
    if (!s.empty()) s += ' ';
    s += fmt::format("{:02x}", b);
  }
  return s;
}

namespace {

using x86::CodeSize;
using x86::DecodedInsn;
namespace fl = x86::rflags;

std::string describe(const DecodedInsn& d, std::span<const uint8_t> bytes) {
  auto hex = format_bytes(bytes.first(d.length));
  if (d.kind == AssistKind::IntN) return fmt::format("int {:#x} ({})", d.vector, hex);
  if (d.replay) return fmt::format("{} {} ({})", to_string(d.kind), d.replay->mnemonic, hex);
  return fmt::format("{} ({})", to_string(d.kind), hex);
}

}  // namespace

x86::AssistResult<AssistKind> complete_instruction(std::span<const uint8_t> insn, CpuState& cpu, AssistEnv& env) {
  auto bytes = insn.first(std::min(insn.size(), x86::kMaxInsnLength));
  CodeSize mode = TRY_CTX(x86::code_size(cpu.sregs), fmt::format("instruction {}", format_bytes(bytes)));
  DecodedInsn d = TRY(x86::decode(bytes, TRY(x86::decode_mode(cpu.sregs))));
  std::string what = describe(d, bytes);

  CpuState next = cpu;
  uint64_t next_rip = (cpu.regs.rip + d.length) & x86::ip_mask(mode);
  assist_ops::Step step{d, next, env, next_rip, what};
  switch (d.kind) {
    case AssistKind::Int3:
    case AssistKind::IntN:
    case AssistKind::Int1:
      TRY_CTX(x86::deliver_software_interrupt(next, env, d.vector, next_rip, d.kind == AssistKind::Int1), what);
      cpu = next;
      return d.kind;
    case AssistKind::Iret:
      // RIP, and RF with the rest of EFLAGS, come from the stack.
      TRY_CTX(x86::complete_iret(next, env, d.operand_bits), what);
      cpu = next;
      return d.kind;
    case AssistKind::Clac:
    case AssistKind::Stac: {
      // CPL > 0 raises #UD (SDM vol. 2 CLAC, STAC).
      if (uint8_t level = x86::cpl(cpu.regs, cpu.sregs); level != 0)
        return x86::raise(x86::Fault{x86::Vector::UD, {}, {}}, "{}: at CPL {}", what, level);
      if (d.kind == AssistKind::Clac) next.regs.rflags &= ~fl::kAC;
      else next.regs.rflags |= fl::kAC;
      break;
    }
    case AssistKind::Fwait:
    case AssistKind::Ldmxcsr:
    case AssistKind::Stmxcsr:
    case AssistKind::Fxsave:
    case AssistKind::Fxrstor:
    case AssistKind::Xsave:
    case AssistKind::Xsaveopt:
    case AssistKind::Xrstor:
    case AssistKind::Xgetbv:
    case AssistKind::Xsetbv:
    case AssistKind::X87:
    case AssistKind::Sse:
    case AssistKind::Avx:
    case AssistKind::Avx512:
    case AssistKind::Bmi:
      TRY_CTX(complete_fpu(d, next, env, next_rip), what);
      break;
    case AssistKind::Rdpid: {
      // IA32_TSC_AUX is 32 bits wide; rdpid r64 zero-extends it (SDM vol. 2 RDPID).
      uint64_t aux = TRY_CTX(env.read_msr(x86::kMsrTscAux), what + ": reading IA32_TSC_AUX");
      assist_ops::write_register(next.regs, d.rm, aux & 0xffffffff, mode == CodeSize::Bits64 ? 64 : 32);
      break;
    }
    case AssistKind::Popcnt:
    case AssistKind::Lzcnt:
    case AssistKind::Tzcnt:
      TRY(assist_ops::bit_count(step));
      break;
    case AssistKind::Cmpxchg8b:
    case AssistKind::Cmpxchg16b:
      TRY(assist_ops::cmpxchg(step));
      break;
    case AssistKind::Clflush:
    case AssistKind::Clflushopt:
    case AssistKind::Clwb:
      TRY(assist_ops::cache_line(step));
      break;
    case AssistKind::Invpcid:
      TRY(assist_ops::invpcid(step));
      break;
    case AssistKind::Lsl:
    case AssistKind::Lar:
      TRY(assist_ops::segment_query(step));
      break;
    case AssistKind::Count:
      return make_error(EOPNOTSUPP, "unsupported instruction {}", format_bytes(bytes));
  }
  next.regs.rip = next_rip;
  next.regs.rflags &= ~fl::kRF;  // cleared when an instruction completes (SDM vol. 3 18.3.1.1)
  cpu = next;
  return d.kind;
}

}  // namespace evmm
