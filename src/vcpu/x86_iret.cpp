#include "vcpu/x86_iret.h"

#include "vcpu/x86_arch.h"
#include "vcpu/x86_linear.h"
#include "vcpu/x86_segment.h"

// What this does not model, because evmm's guests do not need it:
// - NMI blocking, which an iret ends: the caller's CpuState carries none (KVM_SET_VCPU_EVENTS
//   would), so a guest that returns from its NMI handler here stays blocked as KVM sees it.
// - A single-step trap after the iret when the popped TF is set.

namespace evmm::x86 {
namespace {

namespace fl = rflags;

// The flags every iret loads (SDM vol. 2 IRET, RETURN-TO-SAME-PRIVILEGE-LEVEL).
constexpr uint64_t kArithmeticAndControl =
    fl::kCF | fl::kPF | fl::kAF | fl::kZF | fl::kSF | fl::kTF | fl::kDF | fl::kOF | fl::kNT;
// Bit 1 of EFLAGS always reads 1 (SDM vol. 1 3.4.3).
constexpr uint64_t kReservedOne = 1u << 1;

// The EFLAGS an iret leaves, from the old ones and the popped image: IF only when CPL <= IOPL, IOPL
// only at CPL 0, and the upper half (RF, AC, ID; VIF, VIP at CPL 0) only with a 32-bit operand, so
// a 16-bit iret keeps bits 31:16. `level` is the CPL the iret began at.
uint64_t merged_eflags(uint64_t old, uint64_t popped, unsigned operand_bits, uint8_t level) {
  uint64_t load = kArithmeticAndControl;
  if (operand_bits == 32) load |= fl::kRF | fl::kAC | fl::kID;
  uint8_t iopl = static_cast<uint8_t>((old & fl::kIOPL) >> 12);
  if (level <= iopl) load |= fl::kIF;
  if (level == 0) {
    load |= fl::kIOPL;
    if (operand_bits == 32) load |= fl::kVIF | fl::kVIP;
  }
  return (old & ~load) | (popped & load) | kReservedOne;
}

// The return code segment's checks (SDM vol. 2 IRET, PROTECTED-MODE-RETURN), in the SDM's order.
AssistResult<LoadedDescriptor> check_return_cs(LinearMemory& mem, const kvm_sregs& s, uint16_t cs, uint8_t level) {
  if ((cs & 0xfffc) == 0) return raise(Fault{Vector::GP, 0u, {}}, "the return code selector is null");
  Fault gp{Vector::GP, selector_error(cs), {}};
  LoadedDescriptor loaded = TRY(read_descriptor(mem, s, cs, "return code selector"));
  const SegmentDescriptor& d = loaded.desc;
  uint8_t rpl = cs & 3;
  if (!d.code()) return raise(gp, "return selector {:#x} is not a code segment (descriptor {:#018x})", cs, d.raw);
  if (rpl < level) return raise(gp, "return code selector {:#x} has RPL {}, below CPL {}", cs, rpl, level);
  bool conforming = (d.type() & kTypeConforming) != 0;
  if (conforming && d.dpl() > rpl)
    return raise(gp, "conforming return code segment {:#x} has DPL {}, above its RPL {}", cs, d.dpl(), rpl);
  if (!conforming && d.dpl() != rpl)
    return raise(gp, "return code segment {:#x} has DPL {}, not its RPL {}", cs, d.dpl(), rpl);
  if (!d.present())
    return raise(Fault{Vector::NP, selector_error(cs), {}}, "return code segment {:#x} is not present", cs);
  return loaded;
}

// The stack segment's checks on a return to an outer level (SDM vol. 2 IRET, "Protected Mode
// Exceptions"; vol. 3 5.8): the new SS must be a present writable data segment at the new CPL.
AssistResult<LoadedDescriptor> check_return_ss(LinearMemory& mem, const kvm_sregs& s, uint16_t ss, uint16_t cs) {
  if ((ss & 0xfffc) == 0) return raise(Fault{Vector::GP, 0u, {}}, "the return stack selector is null");
  Fault gp{Vector::GP, selector_error(ss), {}};
  LoadedDescriptor loaded = TRY(read_descriptor(mem, s, ss, "return stack selector"));
  const SegmentDescriptor& d = loaded.desc;
  uint8_t new_cpl = cs & 3;
  if ((ss & 3) != new_cpl)
    return raise(gp, "return stack selector {:#x} has RPL {}, not the return CS's RPL {}", ss, ss & 3, new_cpl);
  if (!d.writable_data())
    return raise(gp, "return stack selector {:#x} is not a writable data segment (descriptor {:#018x})", ss, d.raw);
  if (d.dpl() != new_cpl)
    return raise(gp, "return stack segment {:#x} has DPL {}, not the return CS's RPL {}", ss, d.dpl(), new_cpl);
  if (!d.present())
    return raise(Fault{Vector::SS, selector_error(ss), {}}, "return stack segment {:#x} is not present", ss);
  return loaded;
}

// On a return to an outer level, a data segment register the new CPL may not use becomes null: one
// whose cached DPL is below it, holding data or non-conforming code (SDM vol. 2 IRET,
// RETURN-TO-OUTER-PRIVILEGE-LEVEL; vol. 3 5.8).
void null_if_privileged(kvm_segment& seg, uint8_t new_cpl) {
  if ((seg.selector & 0xfffc) == 0 || seg.unusable) return;
  bool data_or_nonconforming = !(seg.type & kTypeCode) || !(seg.type & kTypeConforming);
  if (seg.dpl >= new_cpl || !data_or_nonconforming) return;
  // A null selector leaves the register unusable, as KVM reports it (VMX's "unusable" bit).
  seg = kvm_segment{};
  seg.unusable = 1;
}

}  // namespace

AssistResult<void> complete_iret(CpuState& cpu, AssistEnv& env, unsigned operand_bits) {
  const kvm_sregs& s = cpu.sregs;
  if (!(s.cr0 & kCr0Pe)) return make_error(EOPNOTSUPP, "iret in real mode: KVM's emulator completes it");
  if (cpu.regs.rflags & fl::kVM) return make_error(EOPNOTSUPP, "iret in virtual-8086 mode");
  // In IA-32e mode the host runs iretq itself and raises #GP(0) for a compatibility-mode iret.
  if (s.efer & kEferLma) return make_error(EOPNOTSUPP, "iret in IA-32e mode");
  if (operand_bits != 16 && operand_bits != 32)
    return make_error(EOPNOTSUPP, "iret with a {}-bit operand outside 64-bit mode", operand_bits);
  // A nested-task return switches tasks through the TSS's back link (SDM vol. 3 7.3, 7.4).
  if (cpu.regs.rflags & fl::kNT)
    return make_error(EOPNOTSUPP, "iret with EFLAGS.NT: nested task return is not supported");

  uint8_t level = cpl(cpu.regs, s);
  unsigned width = operand_bits / 8;
  LinearMemory mem(env, cpu, false);
  LegacyStack st = LegacyStack::from(s.ss, cpu.regs.rsp, false);
  uint64_t eip = TRY(st.pop(mem, width));
  auto cs = static_cast<uint16_t>(TRY(st.pop(mem, width)));
  uint64_t popped_flags = TRY(st.pop(mem, width));
  if ((popped_flags & fl::kVM) && level == 0)
    return make_error(EOPNOTSUPP, "iret to virtual-8086 mode (popped EFLAGS {:#x}) is not supported", popped_flags);

  LoadedDescriptor code = TRY(check_return_cs(mem, s, cs, level));
  CpuState next = cpu;
  uint8_t new_cpl = cs & 3;
  if (new_cpl > level) {
    // RETURN-TO-OUTER-PRIVILEGE-LEVEL: the outer level's ESP and SS sit above the frame.
    uint64_t esp = TRY(st.pop(mem, width));
    auto ss = static_cast<uint16_t>(TRY(st.pop(mem, width)));
    LoadedDescriptor stack = TRY(check_return_ss(mem, s, ss, cs));
    next.sregs.ss = segment_cache(stack.desc, ss);
    // A 16-bit stack segment takes only SP; ESP's upper half keeps the inner level's bits, as on
    // hardware (the leak Linux's espfix hides).
    next.regs.rsp = next.sregs.ss.db ? esp : ((cpu.regs.rsp & 0xffff0000u) | (esp & 0xffff));
    TRY(stage_accessed_bit(mem, stack));
    for (kvm_segment* seg : {&next.sregs.es, &next.sregs.ds, &next.sregs.fs, &next.sregs.gs})
      null_if_privileged(*seg, new_cpl);
  } else {
    next.regs.rsp = st.merged_rsp(cpu.regs.rsp) & 0xffffffffu;
  }
  kvm_segment new_cs = segment_cache(code.desc, cs);
  // Expand-up only: a code segment cannot be expand-down (SDM vol. 3 3.4.5.1).
  if (eip > new_cs.limit)
    return raise(Fault{Vector::GP, 0u, {}}, "return EIP {:#x} is beyond the code segment limit {:#x}", eip,
                 new_cs.limit);
  TRY(stage_accessed_bit(mem, code));
  TRY(mem.commit());

  next.regs.rip = eip;
  next.regs.rflags = merged_eflags(cpu.regs.rflags, popped_flags, operand_bits, level);
  next.sregs.cs = new_cs;
  cpu = next;
  return {};
}

}  // namespace evmm::x86
