// QEMU's isa-debug-exit: a guest writes V to the port and the VM stops with status (V << 1) | 1,
// so a test guest can report pass or fail through the VMM's exit status.
//
// Range: insert at platform::kDebugExitPort (0xf4) with length DebugExit::kRangeLen (4).
// A write of 1, 2 or 4 bytes at offset 0 carries V, little-endian. Any other write (8 bytes, or at
// offsets 1-3) is ignored, counted and logged. Reads return all-ones, as nothing is there to read.
//
// The status is (V << 1) | 1 computed in 32 bits, as QEMU's exit((val << 1) | 1) ends up doing:
// for a 4-byte V the top bit is lost. The VMM maps it to a process exit status, keeping 8 bits.
#pragma once

#include <atomic>
#include <cstdint>
#include <span>

#include "bus/io_bus.h"
#include "devices/vm_stop_handler.h"

namespace evmm {

struct DebugExitStats {
  std::atomic<uint64_t> exits{0};
  std::atomic<uint64_t> bad_accesses{0};
};

class DebugExit final : public BusDevice {
 public:
  static constexpr uint64_t kRangeLen = 4;

  explicit DebugExit(VmStopHandler& vm) : vm_(vm) {}

  void read(const BusRead& io) override;
  void write(const BusWrite& io) override;

  const DebugExitStats& stats() const { return stats_; }

 private:
  // Stateless besides the counters; VmStopHandler::request_stop is thread-safe.
  VmStopHandler& vm_;
  DebugExitStats stats_;
};

}  // namespace evmm
