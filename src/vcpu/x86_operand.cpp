#include "vcpu/x86_operand.h"

#include "vcpu/x86_arch.h"

namespace evmm::x86 {
namespace {

// Code/data segment type bits (SDM vol. 3 3.4.5.1).
constexpr uint8_t kTypeWritableOrReadable = 0x2;
constexpr uint8_t kTypeExpandDown = 0x4;
constexpr uint8_t kTypeCode = 0x8;

const kvm_segment& segment_cache(const kvm_sregs& s, SegReg r) {
  switch (r) {
    case SegReg::ES: return s.es;
    case SegReg::CS: return s.cs;
    case SegReg::SS: return s.ss;
    case SegReg::DS: return s.ds;
    case SegReg::FS: return s.fs;
    case SegReg::GS: return s.gs;
  }
  return s.ds;
}

constexpr const char* kSegNames[] = {"es", "cs", "ss", "ds", "fs", "gs"};

uint64_t address_mask(unsigned bits) { return bits == 64 ? ~0ull : (1ull << bits) - 1; }

}  // namespace

uint64_t effective_address(const MemRef& m, const kvm_regs& regs, unsigned address_bits, uint64_t next_rip) {
  kvm_regs r = regs;  // gpr() hands out references into a mutable struct
  uint64_t ea = static_cast<uint64_t>(m.disp);
  if (m.rip_relative) ea += next_rip;
  if (m.base != kNoReg) ea += gpr(r, m.base);
  if (m.index != kNoReg) ea += gpr(r, m.index) * m.scale;
  return ea & address_mask(address_bits);
}

AssistResult<uint64_t> linear_address(const MemRef& m, uint64_t ea, const CpuState& cpu, SegmentAccess access) {
  const kvm_sregs& s = cpu.sregs;
  const char* name = kSegNames[static_cast<unsigned>(m.segment)];
  // A reference through SS raises #SS, any other #GP (SDM vol. 3 6.15, interrupts 12 and 13).
  Fault f{m.segment == SegReg::SS ? Vector::SS : Vector::GP, 0u, {}};
  uint64_t last = static_cast<uint64_t>(m.size ? m.size : 1) - 1;

  if ((s.efer & kEferLma) && s.cs.l) {
    const kvm_segment& seg = segment_cache(s, m.segment);
    uint64_t base = (m.segment == SegReg::FS || m.segment == SegReg::GS) ? seg.base : 0;
    uint64_t linear = base + ea;
    if (!is_canonical(linear, s) || !is_canonical(linear + last, s))
      return raise(f, "{}:{:#x} is linear address {:#x}, which is not canonical", name, ea, linear);
    return linear;
  }

  const kvm_segment& seg = segment_cache(s, m.segment);
  bool real = !(s.cr0 & kCr0Pe) || (cpu.regs.rflags & rflags::kVM);
  if (!real) {
    // A null selector loads an unusable segment; using it faults (SDM vol. 3 3.4.2).
    if (seg.unusable || !seg.present) return raise(f, "{} is not usable (selector {:#x})", name, seg.selector);
    bool code = (seg.type & kTypeCode) != 0;
    bool rw = (seg.type & kTypeWritableOrReadable) != 0;
    if (access == SegmentAccess::Write && (code || !rw))
      return raise(f, "{} (type {:#x}) is not writable", name, seg.type);
    if (access == SegmentAccess::Read && code && !rw)
      return raise(f, "{} (type {:#x}) is an execute-only code segment", name, seg.type);
  }
  // Expand-down data segments hold the offsets above the limit (SDM vol. 3 3.4.5.1).
  bool expand_down = !(seg.type & kTypeCode) && (seg.type & kTypeExpandDown) && !real;
  uint64_t top = seg.db ? 0xffffffffull : 0xffffull;
  uint64_t lo = expand_down ? uint64_t{seg.limit} + 1 : 0;
  uint64_t hi = expand_down ? top : seg.limit;
  if (ea < lo || ea + last > hi)
    return raise(f, "{}:{:#x} (+{} bytes) is outside the segment's limit {:#x}{}", name, ea, last + 1, seg.limit,
                 expand_down ? " (expand-down)" : "");
  return (seg.base + ea) & 0xffffffffull;
}

AssistResult<uint64_t> operand_linear(const DecodedInsn& d, const CpuState& cpu, uint64_t next_rip,
                                      SegmentAccess access) {
  if (!d.mem) return make_error(EINVAL, "{} has no memory operand", to_string(d.kind));
  uint64_t ea = effective_address(*d.mem, cpu.regs, d.address_bits, next_rip);
  return linear_address(*d.mem, ea, cpu, access);
}

}  // namespace evmm::x86
