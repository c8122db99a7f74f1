#include "bus/io_bus.h"

#include <algorithm>
#include <mutex>

#include "base/log.h"

namespace evmm {

Result<void> IoBus::insert(uint64_t base, uint64_t len, std::shared_ptr<BusDevice> dev, std::string name) {
  uint64_t last;
  if (len == 0 || __builtin_add_overflow(base, len - 1, &last))
    return make_error(EINVAL, "{} bus: range {:#x}+{:#x} for {} is empty or wraps", name_, base, len, name);
  std::unique_lock lock(mu_);
  // The first range starting after base, and the one before it, are the only possible overlaps.
  auto next = ranges_.upper_bound(base);
  if (next != ranges_.end() && next->first <= last)
    return make_error(EEXIST, "{} bus: {} at {:#x}+{:#x} overlaps {}", name_, name, base, len, next->second.name);
  if (next != ranges_.begin()) {
    auto prev = std::prev(next);
    if (prev->first + (prev->second.len - 1) >= base)
      return make_error(EEXIST, "{} bus: {} at {:#x}+{:#x} overlaps {}", name_, name, base, len, prev->second.name);
  }
  ranges_.emplace(base, Range{len, std::move(dev), std::move(name)});
  return {};
}

Result<void> IoBus::remove(uint64_t base) {
  std::unique_lock lock(mu_);
  if (ranges_.erase(base) == 0) return make_error(ENOENT, "{} bus: nothing registered at {:#x}", name_, base);
  return {};
}

std::shared_ptr<BusDevice> IoBus::lookup(uint64_t addr, uint64_t size, uint64_t* offset) const {
  std::shared_lock lock(mu_);
  auto it = ranges_.upper_bound(addr);
  if (it == ranges_.begin()) return nullptr;
  --it;
  uint64_t off = addr - it->first;
  // Both the first and the last byte of the access must be inside the range.
  if (off >= it->second.len || size > it->second.len - off) return nullptr;
  *offset = off;
  return it->second.dev;
}

bool IoBus::read(uint64_t addr, std::span<uint8_t> data, uint32_t vcpu) {
  uint64_t off;
  if (auto dev = lookup(addr, data.size(), &off)) {
    dev->read({off, data, vcpu});
    return true;
  }
  std::fill(data.begin(), data.end(), 0xff);
  stats_.unclaimed_reads.fetch_add(1, std::memory_order_relaxed);
  LOG_DEBUG("{} bus: unclaimed read of {} bytes at {:#x}", name_, data.size(), addr);
  return false;
}

bool IoBus::write(uint64_t addr, std::span<const uint8_t> data, uint32_t vcpu) {
  uint64_t off;
  if (auto dev = lookup(addr, data.size(), &off)) {
    dev->write({off, data, vcpu});
    return true;
  }
  stats_.unclaimed_writes.fetch_add(1, std::memory_order_relaxed);
  LOG_DEBUG("{} bus: unclaimed write of {} bytes at {:#x}", name_, data.size(), addr);
  return false;
}

}  // namespace evmm
