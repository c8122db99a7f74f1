#include "vcpu/x86_linear.h"

#include <algorithm>
#include <cstring>

namespace evmm::x86 {

namespace {
constexpr uint64_t kPageSize = 4096;
}

template <typename Fn>
Result<void> LinearMemory::for_each_page(uint64_t linear, size_t len, Fn&& fn) {
  uint64_t addr = linear & mask_;
  size_t done = 0;
  while (done < len) {
    size_t n = std::min<size_t>(kPageSize - (addr & (kPageSize - 1)), len - done);
    uint64_t gpa = TRY_CTX(env_.translate(addr), fmt::format("linear address {:#x}", addr));
    if (!env_.memory().contains(GuestAddress(gpa), n))
      return make_error(EFAULT, "linear address {:#x} maps to {:#x}, which is not guest RAM", addr, gpa);
    TRY(fn(gpa, done, n));
    done += n;
    // Pages are 4 KiB aligned and the mask is 2^32-1 or 2^64-1, so a piece never straddles the wrap.
    addr = (addr + n) & mask_;
  }
  return {};
}

Result<void> LinearMemory::read(uint64_t linear, std::span<uint8_t> out) {
  return for_each_page(linear, out.size(), [&](uint64_t gpa, size_t off, size_t n) {
    return env_.memory().read(GuestAddress(gpa), out.subspan(off, n));
  });
}

Result<void> LinearMemory::stage(uint64_t linear, uint64_t value, unsigned bytes) {
  uint8_t le[8];
  for (unsigned i = 0; i < 8; ++i) le[i] = static_cast<uint8_t>(value >> (8 * i));
  size_t len = std::min(bytes, 8u);
  return for_each_page(linear, len, [&](uint64_t gpa, size_t off, size_t n) -> Result<void> {
    Chunk c{gpa, static_cast<uint8_t>(n), {}};
    std::memcpy(c.data, le + off, n);
    staged_.push_back(c);
    return {};
  });
}

Result<void> LinearMemory::commit() {
  for (const Chunk& c : staged_)
    TRY(env_.memory().write(GuestAddress(c.gpa), std::span<const uint8_t>(c.data, c.len)));
  staged_.clear();
  return {};
}

}  // namespace evmm::x86
