// Guest-linear memory for the emulation assists: operands, the IDT, GDT, TSS and stack are at
// linear addresses, and consecutive linear pages need not be consecutive in guest-physical memory.
// Translation is the software page walk of x86_paging.h, with the rights of the access.
//
// Rules:
//   - Reads go page by page; a fault on any page fails the whole read.
//   - Writes are staged: stage() translates every page the write touches (for a write, setting
//     the accessed and dirty flags) and keeps the bytes; commit() writes them all in order. So a
//     write that crosses into a page that faults writes nothing.
//
// Errors: EFAULT with the #PF when a page does not translate; EFAULT without a fault when it
// translates outside guest RAM; EOPNOTSUPP and EAGAIN from the walk.
#pragma once

#include <cstdint>
#include <span>
#include <vector>

#include "base/result.h"
#include "vcpu/assist.h"
#include "vcpu/x86_fault.h"
#include "vcpu/x86_paging.h"

namespace evmm::x86 {

class LinearMemory {
 public:
  // implicit: the accesses are to system structures (descriptor tables, TSS, the stack of an
  // interrupt), which are supervisor accesses whatever the CPL (SDM vol. 3 4.6). Linear addresses
  // wrap at 2^32 outside IA-32e mode.
  LinearMemory(AssistEnv& env, const CpuState& cpu, bool implicit);

  AssistResult<void> read(uint64_t linear, std::span<uint8_t> out);
  template <typename T>
  AssistResult<T> read_le(uint64_t linear) {
    uint8_t b[sizeof(T)];
    TRY(read(linear, b));
    T v = 0;
    for (size_t i = 0; i < sizeof(T); ++i) v |= static_cast<T>(static_cast<T>(b[i]) << (8 * i));
    return v;
  }

  // The guest-physical address of linear for one access that does not cross a page.
  AssistResult<uint64_t> translate(uint64_t linear, AccessType access);
  // Translates every page of [linear, linear+len) for access, touching no data (clflush).
  AssistResult<void> check(uint64_t linear, size_t len, AccessType access);

  // Queues a little-endian write of the low `bytes` bytes of value, or of all of bytes.
  AssistResult<void> stage(uint64_t linear, uint64_t value, unsigned bytes);
  // Queues a write of bytes (the FPU assists' 512-byte and larger images).
  AssistResult<void> stage(uint64_t linear, std::span<const uint8_t> bytes);
  // Performs the staged writes in order.
  Result<void> commit();

 private:
  struct Chunk {
    uint64_t gpa;
    size_t offset;  // into data_
    size_t len;
  };
  // Calls fn(gpa, offset, len) for each page-bounded piece of [linear, linear+len).
  template <typename Fn>
  AssistResult<void> for_each_page(uint64_t linear, size_t len, AccessType access, Fn&& fn);

  AssistEnv& env_;
  PagingContext paging_;
  uint64_t mask_;
  std::vector<Chunk> staged_;
  std::vector<uint8_t> data_;
};

}  // namespace evmm::x86
