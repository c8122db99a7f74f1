#include "vcpu/x86_segment.h"

#include <algorithm>

namespace evmm::x86 {

AssistResult<LoadedDescriptor> read_descriptor(LinearMemory& mem, const kvm_sregs& s, uint16_t selector,
                                               const char* what) {
  Fault gp{Vector::GP, selector_error(selector), {}};
  bool ldt = (selector & 4) != 0;
  if (ldt && (s.ldt.unusable || !s.ldt.present))
    return raise(gp, "{} {:#x} names the LDT, but none is loaded", what, selector);
  uint64_t base = ldt ? s.ldt.base : s.gdt.base;
  uint64_t limit = ldt ? s.ldt.limit : s.gdt.limit;
  uint64_t index = selector & 0xfff8;
  if (index + 7 > limit)
    return raise(gp, "{} {:#x} is beyond the {} limit {:#x}", what, selector, ldt ? "LDT" : "GDT", limit);
  uint64_t raw = TRY_CTX(mem.read_le<uint64_t>(base + index),
                         fmt::format("reading the descriptor of selector {:#x}", selector));
  return LoadedDescriptor{SegmentDescriptor{raw}, base + index};
}

kvm_segment segment_cache(const SegmentDescriptor& d, uint16_t selector) {
  kvm_segment c{};
  c.base = d.base();
  c.limit = d.limit();
  c.selector = selector;
  c.type = d.type() | kTypeAccessed;
  c.present = d.present();
  c.dpl = d.dpl();
  c.db = d.db();
  c.s = d.s();
  c.l = d.l();
  c.g = d.g();
  c.avl = d.avl();
  return c;
}

AssistResult<void> stage_accessed_bit(LinearMemory& mem, const LoadedDescriptor& d) {
  if (d.desc.type() & kTypeAccessed) return {};
  uint8_t access = 0;
  TRY(mem.read(d.linear + 5, std::span(&access, 1)));
  return mem.stage(d.linear + 5, access | kTypeAccessed, 1);
}

LegacyStack LegacyStack::from(const kvm_segment& ss, uint64_t rsp, bool real_mode) {
  uint32_t mask = ss.db && !real_mode ? 0xffffffff : 0xffff;
  LegacyStack st{ss.base, static_cast<uint32_t>(rsp & mask), mask, 0, mask};
  bool expand_down = ss.s && !(ss.type & kTypeCode) && (ss.type & kTypeExpandDown);
  if (real_mode) {
    // Real mode keeps the 64 KiB segment; only an access that wraps mid-word is a fault.
  } else if (expand_down) {
    st.lo = uint64_t{ss.limit} + 1;
  } else {
    st.hi = std::min<uint64_t>(ss.limit, mask);
  }
  return st;
}

AssistResult<void> LegacyStack::push(LinearMemory& mem, uint64_t value, unsigned width) {
  sp = (sp - width) & sp_mask;
  if (sp < lo || uint64_t{sp} + width - 1 > hi)
    return raise(Fault{Vector::SS, 0u, {}}, "push at SS:{:#x} is outside the stack segment", sp);
  TRY(mem.stage(base + sp, value, width));
  return {};
}

AssistResult<uint64_t> LegacyStack::pop(LinearMemory& mem, unsigned width) {
  if (sp < lo || uint64_t{sp} + width - 1 > hi)
    return raise(Fault{Vector::SS, 0u, {}}, "pop at SS:{:#x} is outside the stack segment", sp);
  uint64_t v = width == 2 ? TRY(mem.read_le<uint16_t>(base + sp)) : TRY(mem.read_le<uint32_t>(base + sp));
  sp = (sp + width) & sp_mask;
  return v;
}

}  // namespace evmm::x86
