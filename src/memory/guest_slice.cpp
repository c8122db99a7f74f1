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
