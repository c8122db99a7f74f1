#include "boot/arena.h"

#include <vector>

namespace evmm::boot {

Result<uint64_t> GuestArena::alloc(uint64_t size, uint64_t align) {
  uint64_t at = (next_ + align - 1) & ~(align - 1);
  if (at < next_ || at > end_ || size > end_ - at)
    return make_error(E2BIG, "the {} area [{:#x}, {:#x}) is full: {} more bytes do not fit", name_, start_, end_,
                      size);
  next_ = at + size;
  return at;
}

Result<uint64_t> GuestArena::put(std::span<const uint8_t> bytes, uint64_t align) {
  uint64_t at = TRY(alloc(bytes.size(), align));
  TRY_CTX(mem_.write(GuestAddress(at), bytes), name_);
  return at;
}

Result<uint64_t> GuestArena::put_string(std::string_view s) {
  std::vector<uint8_t> bytes(s.begin(), s.end());
  bytes.push_back(0);
  return put(bytes, 1);
}

}  // namespace evmm::boot
