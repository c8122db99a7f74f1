// Address-range dispatch for port I/O and MMIO exits that reach userspace.
#pragma once

#include <atomic>
#include <cstdint>
#include <map>
#include <memory>
#include <shared_mutex>
#include <span>
#include <string>

#include "base/result.h"

namespace evmm {

// One access to a device, as crosvm's BusAccessInfo: offset is relative to the base of the range the
// device was inserted at; data.size() is the access length (1, 2, 4 or 8, or up to 8 for MMIO); vcpu
// is the index of the vCPU that made it, so a device never needs a thread's hidden "current vCPU".
template <class Byte>
struct BusAccess {
  uint64_t offset;
  std::span<Byte> data;  // a read fills it
  uint32_t vcpu;
};
using BusRead = BusAccess<uint8_t>;
using BusWrite = BusAccess<const uint8_t>;

// A device on a bus. Called from vCPU threads, possibly several at once: a device synchronises its
// own state.
class BusDevice {
 public:
  virtual ~BusDevice() = default;
  virtual void read(const BusRead& io) = 0;
  virtual void write(const BusWrite& io) = 0;
};

struct BusStats {
  std::atomic<uint64_t> unclaimed_reads{0};
  std::atomic<uint64_t> unclaimed_writes{0};
};

class IoBus {
 public:
  explicit IoBus(std::string name) : name_(std::move(name)) {}

  // Claims [base, base+len) for dev. EEXIST if it overlaps an existing range, EINVAL if empty or wrapping.
  Result<void> insert(uint64_t base, uint64_t len, std::shared_ptr<BusDevice> dev, std::string name);
  // ENOENT when no range starts at base.
  Result<void> remove(uint64_t base);

  // Dispatches an access. The whole access [addr, addr+size) must lie inside one device's range;
  // anything else is unclaimed: a read returns all-ones, a write is dropped, and both are counted.
  // Returns whether a device handled it. vcpu is the index of the vCPU that made the access.
  bool read(uint64_t addr, std::span<uint8_t> data, uint32_t vcpu);
  bool write(uint64_t addr, std::span<const uint8_t> data, uint32_t vcpu);

  const BusStats& stats() const { return stats_; }
  const std::string& name() const { return name_; }

 private:
  struct Range {
    uint64_t len;
    std::shared_ptr<BusDevice> dev;
    std::string name;
  };
  // The device whose range holds all of [addr, addr+size), with the offset of addr inside it.
  std::shared_ptr<BusDevice> lookup(uint64_t addr, uint64_t size, uint64_t* offset) const;

  std::string name_;
  mutable std::shared_mutex mu_;
  std::map<uint64_t, Range> ranges_;  // keyed by base
  BusStats stats_;
};

}  // namespace evmm
