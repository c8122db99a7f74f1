#include "vcpu/x86_linear.h"

#include <algorithm>

#include "vcpu/x86_arch.h"

namespace evmm::x86 {

namespace {
constexpr uint64_t kPageSize = 4096;
}

LinearMemory::LinearMemory(AssistEnv& env, const CpuState& cpu, bool implicit)
    : env_(env),
      paging_(PagingContext::from(cpu.regs, cpu.sregs, implicit, env.physical_address_bits())),
      mask_((cpu.sregs.efer & kEferLma) ? ~0ull : 0xffffffffull) {}

AssistResult<uint64_t> LinearMemory::translate(uint64_t linear, AccessType access) {
  uint64_t addr = linear & mask_;
  uint64_t gpa = TRY(walk(env_.memory(), paging_, addr, access));
  return gpa;
}

template <typename Fn>
AssistResult<void> LinearMemory::for_each_page(uint64_t linear, size_t len, AccessType access, Fn&& fn) {
  uint64_t addr = linear & mask_;
  size_t done = 0;
  while (done < len) {
    size_t n = std::min<size_t>(kPageSize - (addr & (kPageSize - 1)), len - done);
    uint64_t gpa = TRY(walk(env_.memory(), paging_, addr, access));
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
  return for_each_page(linear, out.size(), AccessType::Read, [&](uint64_t gpa, size_t off, size_t n) {
    return env_.memory().read(GuestAddress(gpa), out.subspan(off, n));
  });
}

AssistResult<void> LinearMemory::check(uint64_t linear, size_t len, AccessType access) {
  return for_each_page(linear, len, access, [](uint64_t, size_t, size_t) -> Result<void> { return {}; });
}

AssistResult<void> LinearMemory::stage(uint64_t linear, uint64_t value, unsigned bytes) {
  uint8_t le[8];
  for (unsigned i = 0; i < 8; ++i) le[i] = static_cast<uint8_t>(value >> (8 * i));
  return stage(linear, std::span<const uint8_t>(le, std::min(bytes, 8u)));
}

AssistResult<void> LinearMemory::stage(uint64_t linear, std::span<const uint8_t> bytes) {
  size_t first = staged_.size();
  size_t base = data_.size();
  auto r = for_each_page(linear, bytes.size(), AccessType::Write, [&](uint64_t gpa, size_t off, size_t n) -> Result<void> {
    staged_.push_back({gpa, base + off, n});
    return {};
  });
  if (!r) {
    staged_.resize(first);  // a write that faults on a later page stages none of its pieces
    return r;
  }
  data_.insert(data_.end(), bytes.begin(), bytes.end());
  return {};
}

Result<void> LinearMemory::commit() {
  for (const Chunk& c : staged_)
    TRY(env_.memory().write(GuestAddress(c.gpa), std::span<const uint8_t>(data_.data() + c.offset, c.len)));
  staged_.clear();
  data_.clear();
  return {};
}

}  // namespace evmm::x86
