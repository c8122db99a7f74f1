// Guest-linear memory for the emulation assists: the IDT, GDT, TSS and stack are at linear
// addresses, and consecutive linear pages need not be consecutive in guest-physical memory.
#pragma once

#include <cstdint>
#include <span>
#include <vector>

#include "base/result.h"
#include "vcpu/assist.h"
#include "vcpu/x86_fault.h"

namespace evmm::x86 {

class LinearMemory {
 public:
  // address_mask: linear addresses wrap at 2^32 outside IA-32e mode (~0 in IA-32e mode).
  LinearMemory(AssistEnv& env, uint64_t address_mask) : env_(env), mask_(address_mask) {}

  // Reads through translate(), one page at a time; EFAULT if any page is not RAM, and EFAULT with
  // the #PF the CPU would raise if one is unmapped.
  AssistResult<void> read(uint64_t linear, std::span<uint8_t> out);
  template <typename T>
  AssistResult<T> read_le(uint64_t linear) {
    uint8_t b[sizeof(T)];
    TRY(read(linear, b));
    T v = 0;
    for (size_t i = 0; i < sizeof(T); ++i) v |= static_cast<T>(static_cast<T>(b[i]) << (8 * i));
    return v;
  }

  // Queues a little-endian write of the low `bytes` bytes of value. Its pages are translated
  // now, so that commit() finds every mapping already resolved and nothing is half-written.
  AssistResult<void> stage(uint64_t linear, uint64_t value, unsigned bytes);
  // Queues a write of bytes (the FPU assists' 512-byte and larger images).
  AssistResult<void> stage(uint64_t linear, std::span<const uint8_t> bytes);
  // Performs the staged writes in order.
  Result<void> commit();

 private:
  struct Chunk {
    uint64_t gpa;
    uint8_t len;
    uint8_t data[8];
  };
  // Calls fn(gpa, offset, len) for each page-bounded piece of [linear, linear+len).
  template <typename Fn>
  AssistResult<void> for_each_page(uint64_t linear, size_t len, bool write, Fn&& fn);

  AssistEnv& env_;
  uint64_t mask_;
  std::vector<Chunk> staged_;
};

}  // namespace evmm::x86
