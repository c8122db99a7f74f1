// evmm's paravirtual control port (platform::kPvControlPort), for guests that know they run on evmm
// (our test runtime): a 1-byte write of platform::kPvSuspend suspends the vCPU that wrote it, which
// stays in long mode and continues after the write once the VMM resumes it. Reads return 0 (no
// features beyond suspend); other values and widths are counted in bad_accesses and ignored.
#pragma once

#include <atomic>
#include <functional>

#include "bus/io_bus.h"

namespace evmm {

class PvControl final : public BusDevice {
 public:
  static constexpr uint64_t kRangeLen = 1;
  // suspend_caller runs on the writing vCPU's thread with that vCPU's index, taken from the access.
  explicit PvControl(std::function<void(uint32_t vcpu)> suspend_caller) : suspend_caller_(std::move(suspend_caller)) {}

  void read(const BusRead& io) override;
  void write(const BusWrite& io) override;

  uint64_t suspends() const { return suspends_.load(); }
  uint64_t bad_accesses() const { return bad_.load(); }

 private:
  std::function<void(uint32_t vcpu)> suspend_caller_;
  std::atomic<uint64_t> suspends_{0}, bad_{0};
};

}  // namespace evmm
