#include "memory/guest_slice.h"

namespace evmm {

Result<uint8_t*> GuestSlice::at(uint64_t off, uint64_t len) const {
  if (!in_bounds(off, len))
    return make_error(EFAULT, "guest access of {} bytes at offset {} crosses the end of a {}-byte slice", len, off, len_);
  return base_ + off;
}

Result<void> GuestSlice::misaligned(uint64_t off, uint64_t len) const {
  return make_error(EINVAL, "atomic guest access of {} bytes at offset {} is misaligned", len, off);
}

Result<GuestSlice::Words16> GuestSlice::compare_exchange_16(uint64_t off, Words16 expected, Words16 desired) const {
  uint8_t* p = TRY(at(off, 16));
  if (reinterpret_cast<uintptr_t>(p) % 16 != 0) TRY(misaligned(off, 16));
  struct alignas(16) Pair {
    uint64_t w[2];
  };
  uint64_t lo = expected.lo, hi = expected.hi;
  // SAFETY: 16 bytes in bounds and 16-byte aligned, checked above; every x86-64 CPU KVM runs on has
  // cmpxchg16b. It loads the old value into rdx:rax whether or not it stores.
  asm volatile("lock cmpxchg16b %0"
               : "+m"(*reinterpret_cast<Pair*>(p)), "+a"(lo), "+d"(hi)
               : "b"(desired.lo), "c"(desired.hi)
               : "memory", "cc");
  return Words16{lo, hi};
}

Result<GuestSlice> GuestSlice::subslice(uint64_t off, uint64_t len) const {
  return GuestSlice(TRY(at(off, len)), len);
}

Result<void> GuestSlice::copy_in(uint64_t off, std::span<const uint8_t> src) const {
  uint8_t* p = TRY(at(off, src.size()));
  if (!src.empty()) std::memcpy(p, src.data(), src.size());
  return {};
}

Result<void> GuestSlice::copy_out(uint64_t off, std::span<uint8_t> dst) const {
  uint8_t* p = TRY(at(off, dst.size()));
  if (!dst.empty()) std::memcpy(dst.data(), p, dst.size());
  return {};
}

Result<void> GuestSlice::fill(uint64_t off, uint8_t byte, uint64_t len) const {
  uint8_t* p = TRY(at(off, len));
  if (len) std::memset(p, byte, len);
  return {};
}

Result<void> GuestSlice::copy_from(const GuestSlice& src) const {
  uint8_t* p = TRY(at(0, src.len_));
  if (src.len_) std::memmove(p, src.base_, src.len_);
  return {};
}

}  // namespace evmm
