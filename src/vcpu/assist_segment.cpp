// lsl and lar: what a selector's descriptor says, without loading it (SDM vol. 2 LSL, LAR).
// Linux's paranoid entry (NMI, #MC, #DB) finds its CPU with lsl on the CPUNODE descriptor, and
// the emulator here does not run lsl.
#include "vcpu/assist_ops.h"
#include "vcpu/x86_arch.h"
#include "vcpu/x86_linear.h"
#include "vcpu/x86_operand.h"
#include "vcpu/x86_segment.h"

namespace evmm::assist_ops {

namespace {

// The system-descriptor types each instruction accepts; every code and data segment is valid for
// both. In IA-32e mode the 16-bit TSS and gates and the task gate do not exist (SDM vol. 2 LSL,
// LAR, "valid descriptor types").
bool valid_system_type(AssistKind kind, uint8_t type, bool ia32e) {
  switch (type) {
    case 0x2: case 0x9: case 0xB: return true;              // LDT, available and busy TSS
    case 0x1: case 0x3: return !ia32e;                       // 16-bit TSS
    case 0xC: return kind == AssistKind::Lar;                // call gate
    case 0x4: case 0x5: return kind == AssistKind::Lar && !ia32e;  // 16-bit call gate, task gate
    default: return false;
  }
}

}  // namespace

x86::AssistResult<void> segment_query(const Step& s) {
  const x86::DecodedInsn& d = s.d;
  CpuState& cpu = s.next;
  uint16_t selector;
  if (d.mem) {
    uint64_t linear = TRY_CTX(x86::operand_linear(d, cpu, s.next_rip, x86::SegmentAccess::Read), s.what);
    x86::LinearMemory mem(s.env, cpu, false);
    selector = TRY_CTX(mem.read_le<uint16_t>(linear), s.what);
  } else {
    selector = static_cast<uint16_t>(x86::gpr(cpu.regs, d.rm));
  }

  // Whatever makes the descriptor invalid for the instruction only clears ZF; nothing faults but
  // the accesses themselves.
  cpu.regs.rflags &= ~x86::rflags::kZF;
  bool ldt = (selector & 4) != 0;
  if ((selector & 0xfffc) == 0) return {};  // the null selector
  if (ldt && (cpu.sregs.ldt.unusable || !cpu.sregs.ldt.present)) return {};
  uint64_t base = ldt ? cpu.sregs.ldt.base : cpu.sregs.gdt.base;
  uint64_t limit = ldt ? cpu.sregs.ldt.limit : cpu.sregs.gdt.limit;
  uint64_t index = selector & 0xfff8;
  if (index + 7 > limit) return {};
  // A descriptor-table read is a supervisor access whatever the CPL (SDM vol. 3 4.6).
  x86::LinearMemory tables(s.env, cpu, true);
  x86::SegmentDescriptor desc{TRY_CTX(tables.read_le<uint64_t>(base + index),
                                      fmt::format("{}: reading the descriptor of selector {:#x}", s.what, selector))};

  bool ia32e = (cpu.sregs.efer & x86::kEferLma) != 0;
  if (!desc.s() && !valid_system_type(d.kind, desc.type(), ia32e)) return {};
  bool conforming_code = desc.code() && (desc.type() & x86::kTypeConforming);
  uint8_t level = x86::cpl(cpu.regs, cpu.sregs);
  if (!conforming_code && (level > desc.dpl() || (selector & 3) > desc.dpl())) return {};

  uint64_t value;
  if (d.kind == AssistKind::Lsl) value = desc.limit();  // scaled by G
  else value = (desc.raw >> 32) & (d.operand_bits == 16 ? 0xff00 : 0x00f0ff00);
  write_register(cpu.regs, d.reg, value, d.operand_bits == 16 ? 16 : 32);
  cpu.regs.rflags |= x86::rflags::kZF;
  return {};
}

}  // namespace evmm::assist_ops
