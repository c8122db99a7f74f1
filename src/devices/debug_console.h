// The Bochs/QEMU debug console ("port e9 hack"): a byte written to the port is printed.
//
// Range: insert at platform::kDebugConPort (0xe9) with length DebugConsole::kRangeLen (1).
// Accesses other than one byte wide are ignored (reads return all-ones), counted and logged.
#pragma once

#include <atomic>
#include <cstdint>
#include <span>

#include "bus/io_bus.h"
#include "devices/byte_sink.h"

namespace evmm {

struct DebugConsoleStats {
  std::atomic<uint64_t> bytes{0};
  std::atomic<uint64_t> bad_accesses{0};
};

class DebugConsole final : public BusDevice {
 public:
  static constexpr uint64_t kRangeLen = 1;
  // What a read returns: guests probe for the console by reading back the port number (Bochs).
  static constexpr uint8_t kPresence = 0xe9;

  explicit DebugConsole(ByteSink out) : out_(std::move(out)) {}

  void read(const BusRead& io) override;
  void write(const BusWrite& io) override;

  const DebugConsoleStats& stats() const { return stats_; }

 private:
  // No mutable state besides the atomic counters, so no lock: the sink synchronises itself.
  ByteSink out_;
  DebugConsoleStats stats_;
};

}  // namespace evmm
