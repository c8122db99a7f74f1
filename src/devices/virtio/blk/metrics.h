// virtio-blk's counters: what the guest asked for, what the host did, and every refusal by its cause.
// Written on the device event loop, read from anywhere (--stats, tests).
#pragma once

#include <array>
#include <atomic>
#include <cstdint>
#include <string_view>

namespace evmm::virtio {

// Why a request was answered without I/O. Each maps to the status §5.2.6 asks for (request.cpp).
enum class BlkFault : uint8_t {
  NoStatus,          // no device-writable byte to put the status in: returned with length 0
  ShortHeader,       // fewer than 16 device-readable bytes for the header
  WrongDirection,    // data readable where it must be writable or the reverse, or missing
  Unaligned,         // IN/OUT data not a multiple of 512 bytes
  OutOfRange,        // sectors beyond the capacity, or a sector count that overflows
  TooManySegments,   // more data descriptors than seg_max, or more discard ranges than allowed
  TooManySectors,    // a discard or write-zeroes range over its max_*_sectors
  BadSegmentFlags,   // unknown flags, or UNMAP on a discard (§5.2.6.2: UNSUPP)
  ReadOnly,          // a write, discard or write-zeroes on a read-only disk (§5.2.6.2: IOERR)
  NotNegotiated,     // discard or write-zeroes without its feature
  Unsupported,       // a request type this device does not know (UNSUPP)
};
constexpr size_t kBlkFaultCount = static_cast<size_t>(BlkFault::Unsupported) + 1;
std::string_view to_string(BlkFault f);

struct BlkMetrics {
  std::atomic<uint64_t> requests{0};
  std::atomic<uint64_t> reads{0}, writes{0}, flushes{0}, get_ids{0}, discards{0}, write_zeroes{0};
  std::atomic<uint64_t> read_bytes{0}, write_bytes{0};
  std::atomic<uint64_t> host_errors{0};          // requests answered IOERR because the host I/O failed
  std::atomic<uint64_t> dropped_completions{0};  // I/O that finished after a device reset: not reported
  std::atomic<uint64_t> flushes_waited{0};       // flushes that waited for earlier writes to finish
  std::array<std::atomic<uint64_t>, kBlkFaultCount> faults{};

  void count(BlkFault f) { faults[static_cast<size_t>(f)].fetch_add(1, std::memory_order_relaxed); }
  uint64_t fault(BlkFault f) const { return faults[static_cast<size_t>(f)].load(std::memory_order_relaxed); }
  uint64_t total_faults() const {
    uint64_t n = 0;
    for (const auto& f : faults) n += f.load(std::memory_order_relaxed);
    return n;
  }
};

}  // namespace evmm::virtio
