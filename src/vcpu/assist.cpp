#include "vcpu/assist.h"

#include <algorithm>
#include <bit>

#include "vcpu/assist_fpu.h"
#include "vcpu/x86_arch.h"
#include "vcpu/x86_decode.h"
#include "vcpu/x86_interrupt.h"

// What the assists do not model, because evmm's guests do not need it:
// - A single-step trap (RFLAGS.TF) after a completed clac/stac/fwait/rdpid/popcnt/lzcnt/tzcnt is
//   not raised; RF is cleared, as on completion of any instruction.
// - No assist makes a data access that alignment checking (#AC) applies to: the frames pushed at
//   CPL 0 are supervisor accesses (SDM vol. 3 6.15, interrupt 17).
// - A page that translates but is read-only is written anyway: KVM_TRANSLATE's writeable bit is
//   not consulted, so such a push does not raise #PF(P|W).
// - CPUID feature bits (SMAP, RDPID, POPCNT, ABM, BMI1) are not consulted: KVM here reports the
//   host's, and KVM only hands over an instruction the host CPU knows.
// - lzcnt/tzcnt leave OF, SF, AF and PF unchanged (the SDM calls them undefined).
// - A 32-bit register write zero-extends in every mode, as KVM's own emulator does; outside 64-bit
//   mode the SDM leaves the upper half undefined.
// - The interrupt shadow (sti, mov ss) is the caller's business: these registers carry none.

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

// Writes the low `bits` of value to register n: a 16-bit write keeps bits 63:16, a 32-bit write
// zero-extends (SDM vol. 1 3.4.1.1).
void write_register(kvm_regs& regs, unsigned n, uint64_t value, unsigned bits) {
  __u64& r = x86::gpr(regs, n);
  if (bits == 16) r = (r & ~0xffffull) | (value & 0xffff);
  else if (bits == 32) r = value & 0xffffffff;
  else r = value;
}

// popcnt, lzcnt and tzcnt on registers: SDM vol. 2 POPCNT, LZCNT, TZCNT.
void count_bits(const DecodedInsn& d, kvm_regs& regs) {
  unsigned bits = d.operand_bits;
  uint64_t mask = bits == 64 ? ~0ull : (1ull << bits) - 1;
  uint64_t src = x86::gpr(regs, d.rm) & mask;
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
}

std::string describe(const DecodedInsn& d, std::span<const uint8_t> bytes) {
  auto hex = format_bytes(bytes.first(d.length));
  if (d.kind == AssistKind::IntN) return fmt::format("int {:#x} ({})", d.vector, hex);
  return fmt::format("{} ({})", to_string(d.kind), hex);
}

}  // namespace

x86::AssistResult<AssistKind> complete_instruction(std::span<const uint8_t> insn, CpuState& cpu, AssistEnv& env) {
  auto bytes = insn.first(std::min(insn.size(), x86::kMaxInsnLength));
  CodeSize mode = TRY_CTX(x86::code_size(cpu.sregs), fmt::format("instruction {}", format_bytes(bytes)));
  DecodedInsn d = TRY(x86::decode(bytes, mode));
  std::string what = describe(d, bytes);

  CpuState next = cpu;
  uint64_t next_rip = (cpu.regs.rip + d.length) & x86::ip_mask(mode);
  switch (d.kind) {
    case AssistKind::Int3:
    case AssistKind::IntN:
      TRY_CTX(x86::deliver_software_interrupt(next, env, d.vector, next_rip), what);
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
      TRY_CTX(complete_fpu(d, next, env, mode), what);
      break;
    case AssistKind::Rdpid: {
      // IA32_TSC_AUX is 32 bits wide; rdpid r64 zero-extends it (SDM vol. 2 RDPID).
      uint64_t aux = TRY_CTX(env.read_msr(x86::kMsrTscAux), what + ": reading IA32_TSC_AUX");
      write_register(next.regs, d.rm, aux & 0xffffffff, mode == CodeSize::Bits64 ? 64 : 32);
      break;
    }
    case AssistKind::Popcnt:
    case AssistKind::Lzcnt:
    case AssistKind::Tzcnt:
      count_bits(d, next.regs);
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
