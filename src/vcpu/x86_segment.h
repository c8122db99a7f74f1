// Segments for the emulation assists: descriptors read from the GDT or LDT, the kvm_segment caches
// built from them, and the stack below 64-bit mode. Shared by interrupt delivery (x86_interrupt)
// and the return from it (x86_iret).
#pragma once

#include "kvm/kvm_uapi.h"

#include <cstdint>

#include "base/result.h"
#include "vcpu/x86_fault.h"
#include "vcpu/x86_linear.h"

namespace evmm::x86 {

// Code/data segment type bits (SDM vol. 3 3.4.5.1): bit 2 is expand-down for data and conforming
// for code, bit 1 writable for data and readable for code.
inline constexpr uint8_t kTypeAccessed = 0x1;
inline constexpr uint8_t kTypeWritable = 0x2;
inline constexpr uint8_t kTypeExpandDown = 0x4;
inline constexpr uint8_t kTypeConforming = 0x4;
inline constexpr uint8_t kTypeCode = 0x8;

// A code or data segment descriptor, SDM vol. 3 figure 3-8.
struct SegmentDescriptor {
  uint64_t raw;
  uint32_t base() const { return static_cast<uint32_t>(((raw >> 16) & 0xffffff) | ((raw >> 32) & 0xff000000)); }
  uint32_t limit() const {
    uint32_t l = static_cast<uint32_t>((raw & 0xffff) | ((raw >> 32) & 0xf0000));
    return g() ? (l << 12) | 0xfff : l;
  }
  uint8_t type() const { return (raw >> 40) & 0xf; }
  bool s() const { return (raw >> 44) & 1; }
  uint8_t dpl() const { return (raw >> 45) & 3; }
  bool present() const { return (raw >> 47) & 1; }
  bool avl() const { return (raw >> 52) & 1; }
  bool l() const { return (raw >> 53) & 1; }
  bool db() const { return (raw >> 54) & 1; }
  bool g() const { return (raw >> 55) & 1; }
  bool code() const { return s() && (type() & kTypeCode); }
  bool writable_data() const { return s() && !(type() & kTypeCode) && (type() & kTypeWritable); }
};

// A descriptor and the linear address it was read from, for setting its accessed bit.
struct LoadedDescriptor {
  SegmentDescriptor desc;
  uint64_t linear;
};

// Reads the descriptor a non-null selector names, from the GDT or (TI=1) the LDT. #GP(selector)
// when it lies beyond the table's limit or names the LDT while none is loaded (SDM vol. 3 3.4.2,
// 5.4); `what` names the selector's role in the messages ("code selector").
AssistResult<LoadedDescriptor> read_descriptor(LinearMemory& mem, const kvm_sregs& s, uint16_t selector,
                                               const char* what);

// The segment register cache (KVM's kvm_segment) that loading `selector` with descriptor d leaves:
// base, limit scaled by G, the type with the accessed bit set, and the other attribute bits as
// they are in the descriptor.
kvm_segment segment_cache(const SegmentDescriptor& d, uint16_t selector);

// Loading a descriptor sets its accessed bit in memory, as the CPU (and KVM's emulator) does
// (SDM vol. 3 3.4.5.1); the write is staged with mem's other writes.
AssistResult<void> stage_accessed_bit(LinearMemory& mem, const LoadedDescriptor& d);

// The stack below 64-bit mode: SP or ESP (by SS.B) inside a segment whose valid offsets are
// [lo, hi]; accesses that leave it raise #SS(0) (SDM vol. 3 5.3).
struct LegacyStack {
  uint64_t base;
  uint32_t sp;
  uint32_t sp_mask;
  uint64_t lo, hi;

  static LegacyStack from(const kvm_segment& ss, uint64_t rsp, bool real_mode);
  // Stages a write of the low `width` bytes of value below sp.
  AssistResult<void> push(LinearMemory& mem, uint64_t value, unsigned width);
  // Reads `width` bytes at sp, zero-extended, and moves sp above them.
  AssistResult<uint64_t> pop(LinearMemory& mem, unsigned width);
  // rsp with its low 16 or 32 bits (by SS.B) replaced by sp.
  uint64_t merged_rsp(uint64_t rsp) const { return (rsp & ~uint64_t{sp_mask}) | sp; }
};

}  // namespace evmm::x86
