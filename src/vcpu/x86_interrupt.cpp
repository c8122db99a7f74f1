#include "vcpu/x86_interrupt.h"

#include "vcpu/x86_arch.h"
#include "vcpu/x86_linear.h"
#include "vcpu/x86_segment.h"

namespace evmm::x86 {
namespace {

// System-descriptor types with the S bit (SDM vol. 3 table 3-2); in IA-32e mode 0x0E and 0x0F
// are the 64-bit interrupt and trap gates, and the 16-bit and task gates do not exist.
enum class GateType : uint8_t { Task = 0x05, Interrupt16 = 0x06, Trap16 = 0x07, Interrupt = 0x0E, Trap = 0x0F };

// The frame's RSP is aligned down to 16 in IA-32e mode (SDM vol. 3 6.14.2).
constexpr uint64_t kLongStackAlign = 16;

// An IDT gate, SDM vol. 3 figures 6-2 (legacy) and 6-8 (IA-32e).
struct Gate {
  uint64_t offset;
  uint16_t selector;
  uint8_t ist;
  uint8_t type;  // S bit and type: 5 bits
  uint8_t dpl;
  bool present;
  bool interrupt() const {
    return type == static_cast<uint8_t>(GateType::Interrupt) || type == static_cast<uint8_t>(GateType::Interrupt16);
  }
};

AssistResult<Gate> read_gate(LinearMemory& mem, const kvm_sregs& s, uint8_t vector, bool long_mode, bool ext) {
  unsigned size = long_mode ? 16 : 8;
  uint64_t off = uint64_t{vector} * size;
  if (off + size - 1 > s.idt.limit)
    return raise(Fault{Vector::GP, idt_error(vector, ext), {}}, "vector {:#x} is beyond the IDT limit {:#x}", vector,
                 s.idt.limit);
  uint8_t b[16] = {};
  TRY_CTX(mem.read(s.idt.base + off, std::span(b, size)), fmt::format("reading IDT entry {:#x}", vector));
  auto u16 = [&](int i) { return static_cast<uint16_t>(b[i] | b[i + 1] << 8); };
  auto u32 = [&](int i) { return static_cast<uint32_t>(u16(i) | uint32_t{u16(i + 2)} << 16); };
  Gate g{};
  g.offset = u16(0) | uint64_t{u16(6)} << 16;
  g.selector = u16(2);
  g.type = b[5] & 0x1f;
  g.dpl = (b[5] >> 5) & 3;
  g.present = (b[5] >> 7) & 1;

  auto bad_type = [&] {
    return raise(Fault{Vector::GP, idt_error(vector, ext), {}}, "IDT entry {:#x} has type {:#x}, not {}", vector, g.type,
                 long_mode ? "a 64-bit interrupt or trap gate" : "an interrupt or trap gate");
  };
  if (long_mode) {
    g.offset |= uint64_t{u32(8)} << 32;
    g.ist = b[4] & 7;
    // The upper half's type field must be zero (SDM vol. 3 figure 6-8).
    if (g.type != static_cast<uint8_t>(GateType::Interrupt) && g.type != static_cast<uint8_t>(GateType::Trap))
      return bad_type();
    if ((b[13] & 0x1f) != 0) return bad_type();
    return g;
  }
  switch (static_cast<GateType>(g.type)) {
    case GateType::Interrupt16:
    case GateType::Trap16:
      g.offset &= 0xffff;  // a 286 gate's upper offset bytes are reserved
      return g;
    case GateType::Interrupt:
    case GateType::Trap:
      return g;
    case GateType::Task:
      return make_error(EOPNOTSUPP, "IDT entry {:#x} is a task gate, which evmm does not switch through", vector);
  }
  return bad_type();
}

struct CodeSegment {
  kvm_segment cache;
  LoadedDescriptor loaded;
};

// Loads the handler's code segment the way a same-privilege interrupt does (SDM vol. 2, INT n:
// the checks on the gate's selector and on the segment it names).
AssistResult<CodeSegment> load_code_segment(LinearMemory& mem, const kvm_sregs& s, uint16_t selector, bool long_mode,
                                            bool ext) {
  if ((selector & 0xfffc) == 0) return raise(Fault{Vector::GP, ext ? 1u : 0u, {}}, "the gate's code selector is null");
  // The selector checks below raise #GP or #NP with the selector; EXT is 0 for int n and int3, 1 for
  // int1 (SDM vol. 3 6.13); read_descriptor's own faults do not set it.
  Fault gp{Vector::GP, selector_error(selector, ext), {}};
  LoadedDescriptor loaded = TRY(read_descriptor(mem, s, selector, "code selector"));
  const SegmentDescriptor& d = loaded.desc;
  if (!d.code()) return raise(gp, "selector {:#x} is not a code segment (descriptor {:#018x})", selector, d.raw);
  // At CPL 0 both a conforming and a non-conforming target must have DPL 0 (DPL > CPL is #GP).
  if (d.dpl() != 0) return raise(gp, "code segment {:#x} has DPL {}, above CPL 0", selector, d.dpl());
  if (!d.present())
    return raise(Fault{Vector::NP, selector_error(selector, ext), {}}, "code segment {:#x} is not present", selector);
  if (long_mode && (!d.l() || d.db()))
    return raise(gp, "code segment {:#x} is not a 64-bit code segment (descriptor {:#018x})", selector, d.raw);
  // RPL becomes the CPL, 0.
  return CodeSegment{segment_cache(d, selector & 0xfffc), loaded};
}

AssistResult<uint64_t> read_ist(LinearMemory& mem, const kvm_sregs& s, uint8_t ist) {
  // 64-bit TSS (SDM vol. 3 figure 8-11): IST1 at byte 36, each entry 8 bytes.
  constexpr uint8_t kTss64Available = 0x9, kTss64Busy = 0xB;
  if (!s.tr.present || s.tr.unusable || (s.tr.type != kTss64Available && s.tr.type != kTss64Busy))
    return make_error(EINVAL, "gate uses IST{}, but TR holds no 64-bit TSS (type {:#x})", ist, s.tr.type);
  uint64_t off = 36 + (uint64_t{ist} - 1) * 8;
  if (off + 7 > s.tr.limit)
    return make_error(EINVAL, "IST{} is beyond the TSS limit {:#x}", ist, s.tr.limit);
  return TRY_CTX(mem.read_le<uint64_t>(s.tr.base + off), fmt::format("reading IST{} from the TSS", ist));
}

AssistResult<void> deliver_long(CpuState& next, LinearMemory& mem, const Gate& gate, uint64_t next_rip, bool ext) {
  const kvm_sregs& s = next.sregs;
  CodeSegment cs = TRY(load_code_segment(mem, s, gate.selector, true, ext));
  if (!is_canonical(gate.offset, s))
    return raise(Fault{Vector::GP, 0u, {}}, "handler address {:#x} is not canonical", gate.offset);
  uint64_t rsp = next.regs.rsp;
  if (gate.ist) rsp = TRY(read_ist(mem, s, gate.ist));
  rsp &= ~(kLongStackAlign - 1);
  // The frame, from the top: SS, RSP, RFLAGS, CS, RIP (SDM vol. 3 figure 6-9).
  const uint64_t frame[] = {s.ss.selector, next.regs.rsp, next.regs.rflags, s.cs.selector, next_rip};
  uint64_t bottom = rsp - sizeof frame;
  if (!is_canonical(bottom, s) || !is_canonical(rsp - 1, s))
    return raise(Fault{Vector::SS, 0u, {}}, "stack {:#x} is not canonical", rsp);
  uint64_t at = rsp;
  for (uint64_t v : frame) TRY(mem.stage(at -= 8, v, 8));
  TRY(stage_accessed_bit(mem, cs.loaded));
  TRY(mem.commit());

  next.regs.rsp = bottom;
  next.regs.rip = gate.offset;
  next.sregs.cs = cs.cache;
  return {};
}

AssistResult<void> deliver_protected(CpuState& next, LinearMemory& mem, const Gate& gate, uint64_t next_rip,
                                     bool ext) {
  const kvm_sregs& s = next.sregs;
  CodeSegment cs = TRY(load_code_segment(mem, s, gate.selector, false, ext));
  if (gate.offset > cs.cache.limit)
    return raise(Fault{Vector::GP, 0u, {}}, "handler offset {:#x} is beyond the code segment limit {:#x}", gate.offset,
                 cs.cache.limit);
  bool gate32 = gate.type == static_cast<uint8_t>(GateType::Interrupt) || gate.type == static_cast<uint8_t>(GateType::Trap);
  unsigned width = gate32 ? 4 : 2;
  LegacyStack st = LegacyStack::from(s.ss, next.regs.rsp, false);
  for (uint64_t v : {uint64_t{next.regs.rflags}, uint64_t{s.cs.selector}, next_rip}) TRY(st.push(mem, v, width));
  TRY(stage_accessed_bit(mem, cs.loaded));
  TRY(mem.commit());

  next.regs.rsp = st.merged_rsp(next.regs.rsp);
  next.regs.rip = gate.offset;
  next.sregs.cs = cs.cache;
  return {};
}

// Real-address mode: the IVT holds 4-byte segment:offset vectors (SDM vol. 3 20.1.4).
AssistResult<void> deliver_real(CpuState& next, AssistEnv& env, uint8_t vector, uint64_t next_rip) {
  const kvm_sregs& s = next.sregs;
  if (s.ss.db) return make_error(EOPNOTSUPP, "real mode with a 32-bit stack segment");
  LinearMemory mem(env, next, true);
  uint64_t off = uint64_t{vector} * 4;
  if (off + 3 > s.idt.limit)
    return make_error(EINVAL, "vector {:#x} is beyond the IVT limit {:#x}", vector, s.idt.limit);
  uint32_t entry = TRY_CTX(mem.read_le<uint32_t>(s.idt.base + off), fmt::format("reading IVT entry {:#x}", vector));
  LegacyStack st = LegacyStack::from(s.ss, next.regs.rsp, true);
  for (uint64_t v : {uint64_t{next.regs.rflags}, uint64_t{s.cs.selector}, next_rip}) TRY(st.push(mem, v, 2));
  TRY(mem.commit());

  uint16_t segment = static_cast<uint16_t>(entry >> 16);
  next.regs.rsp = st.merged_rsp(next.regs.rsp);
  next.regs.rip = entry & 0xffff;
  // RF too: it is cleared when any instruction completes (SDM vol. 3 18.3.1.1).
  next.regs.rflags &= ~(rflags::kIF | rflags::kTF | rflags::kAC | rflags::kRF);
  next.sregs.cs.selector = segment;
  next.sregs.cs.base = uint64_t{segment} << 4;
  return {};
}

}  // namespace

AssistResult<void> deliver_software_interrupt(CpuState& cpu, AssistEnv& env, uint8_t vector, uint64_t next_rip,
                                              bool privileged) {
  CpuState next = cpu;
  if (!(cpu.sregs.cr0 & kCr0Pe)) {
    TRY(deliver_real(next, env, vector, next_rip));
    cpu = next;
    return {};
  }
  if (cpu.regs.rflags & rflags::kVM) return make_error(EOPNOTSUPP, "software interrupt in virtual-8086 mode");

  // Compatibility mode delivers through the 64-bit IDT too: the IDT format follows EFER.LMA.
  bool long_mode = (cpu.sregs.efer & kEferLma) != 0;
  LinearMemory mem(env, cpu, true);
  // EXT is clear only for int n, int3 and into (SDM vol. 3 6.13), so int1's faults set it.
  Gate gate = TRY(read_gate(mem, cpu.sregs, vector, long_mode, privileged));
  uint8_t level = cpl(cpu.regs, cpu.sregs);
  // The software-interrupt privilege check (SDM vol. 3 6.12.1.1) comes before the present check;
  // int1 is a privileged software exception, which skips it (SDM vol. 3 6.4).
  if (!privileged && gate.dpl < level)
    return raise(Fault{Vector::GP, idt_error(vector), {}}, "IDT entry {:#x} has DPL {}, below CPL {}", vector, gate.dpl,
                 level);
  if (!gate.present) return raise(Fault{Vector::NP, idt_error(vector, privileged), {}}, "IDT entry {:#x} is not present", vector);
  if (level != 0)
    return make_error(EOPNOTSUPP, "software interrupt at CPL {}: evmm completes only CPL 0 ones", level);

  if (long_mode) TRY(deliver_long(next, mem, gate, next_rip, privileged));
  else TRY(deliver_protected(next, mem, gate, next_rip, privileged));
  next.regs.rflags &= ~(rflags::kTF | rflags::kNT | rflags::kRF | rflags::kVM);
  if (gate.interrupt()) next.regs.rflags &= ~rflags::kIF;
  cpu = next;
  return {};
}

}  // namespace evmm::x86
