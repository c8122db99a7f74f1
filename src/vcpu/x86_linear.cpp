#include "vcpu/x86_linear.h"

#include <algorithm>
#include <cstring>

namespace evmm::x86 {

namespace {
constexpr uint64_t kPageSize = 4096;
}

template <typename Fn>
AssistResult<void> LinearMemory::for_each_page(uint64_t linear, size_t len, bool write, Fn&& fn) {
  uint64_t addr = linear & mask_;
  size_t done = 0;
  while (done < len) {
    size_t n = std::min<size_t>(kPageSize - (addr & (kPageSize - 1)), len - done);
    auto translated = env_.translate(addr);
    // Descriptor-table and stack accesses here are supervisor accesses: U/S is 0, P is 0 for an
    // unmapped page, W/R says which (SDM vol. 3 4.7, figure 4-12).
    if (!translated && translated.error().code() == EFAULT)
      return raise(Fault{Vector::PF, write ? 2u : 0u, addr}, "linear address {:#x}: {}", addr,
                   translated.error().context());
    uint64_t gpa = TRY_CTX(std::move(translated), fmt::format("linear address {:#x}", addr));
    if (!env_.memory().contains(GuestAddress(gpa), n))
      return make_error(EFAULT, "linear address {:#x} maps to {:#x}, which is not guest RAM", addr, gpa);
    TRY(fn(gpa, done, n));
    done += n;
    // Pages are 4 KiB aligned and the mask is 2^32-1 or 2^64-1, so a piece never straddles the wrap.
    addr = (addr + n) & mask_;
  }
  return {};
}

AssistResult<void> LinearMemory::read(uint64_t linear, std::span<uint8_t> out) {
  return for_each_page(linear, out.size(), false, [&](uint64_t gpa, size_t off, size_t n) {
    return env_.memory().read(GuestAddress(gpa), out.subspan(off, n));
  });
}

AssistResult<void> LinearMemory::stage(uint64_t linear, uint64_t value, unsigned bytes) {
  uint8_t le[8];
  for (unsigned i = 0; i < 8; ++i) le[i] = static_cast<uint8_t>(value >> (8 * i));
  size_t len = std::min(bytes, 8u);
  return for_each_page(linear, len, true, [&](uint64_t gpa, size_t off, size_t n) -> Result<void> {
    Chunk c{gpa, static_cast<uint8_t>(n), {}};
    std::memcpy(c.data, le + off, n);
    staged_.push_back(c);
    return {};
  });
}

AssistResult<void> LinearMemory::stage(uint64_t linear, std::span<const uint8_t> bytes) {
  for (size_t i = 0; i < bytes.size(); i += 8) {
    size_t n = std::min<size_t>(8, bytes.size() - i);
    uint64_t v = 0;
    for (size_t k = 0; k < n; ++k) v |= uint64_t{bytes[i + k]} << (8 * k);
    TRY(stage(linear + i, v, static_cast<unsigned>(n)));
  }
  return {};
}

Result<void> LinearMemory::commit() {
  for (const Chunk& c : staged_)
    TRY(env_.memory().write(GuestAddress(c.gpa), std::span<const uint8_t>(c.data, c.len)));
  staged_.clear();
  return {};
}

}  // namespace evmm::x86
