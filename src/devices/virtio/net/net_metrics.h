// virtio-net's counters: traffic, and every guest mistake and backend failure by kind. Written on
// the device thread, read from anywhere (--stats, tests).
#pragma once

#include <array>
#include <atomic>
#include <cstdint>
#include <string_view>

namespace evmm::virtio {

// Why a transmit chain was refused (counted, returned with length 0, the frame not sent).
enum class TxFault : uint8_t {
  WritableBuffer,  // §5.1.6.2: a transmit chain is device-readable only
  ShortHeader,     // fewer bytes than struct virtio_net_hdr_v1
  Gso,             // a gso_type other than NONE: no GSO feature was offered
  NeedsCsum,       // VIRTIO_NET_HDR_F_NEEDS_CSUM: VIRTIO_NET_F_CSUM was not offered
  Runt,            // a frame shorter than an Ethernet header
  TooLarge,        // a frame longer than NetDevice::kMaxFrame
  Memory,          // a buffer the walker accepted that guest memory then refused (cannot happen)
};
constexpr size_t kTxFaultCount = static_cast<size_t>(TxFault::Memory) + 1;
std::string_view to_string(TxFault f);

struct NetMetrics {
  std::atomic<uint64_t> rx_frames{0}, rx_bytes{0};
  std::atomic<uint64_t> rx_too_big{0};        // a frame larger than the buffers the guest posted: dropped
  std::atomic<uint64_t> rx_runts{0};          // a backend frame shorter than an Ethernet header: dropped
  std::atomic<uint64_t> rx_bad_chains{0};     // a receive chain with readable buffers or too small for the header
  std::atomic<uint64_t> rx_waits{0};          // times a frame waited in the backend for receive buffers
  std::atomic<uint64_t> rx_backend_errors{0};
  std::atomic<uint64_t> tx_frames{0}, tx_bytes{0};
  std::array<std::atomic<uint64_t>, kTxFaultCount> tx_faults{};
  std::atomic<uint64_t> tx_blocked{0};        // EAGAIN from the backend: resumed on EPOLLOUT
  std::atomic<uint64_t> tx_backend_errors{0};  // frames the backend refused (dropped and counted)
  std::atomic<uint64_t> memory_errors{0};     // guest-memory writes refused after the walker's checks

  uint64_t tx_fault(TxFault f) const { return tx_faults[static_cast<size_t>(f)].load(std::memory_order_relaxed); }
  uint64_t guest_errors() const;  // every guest mistake: rx_bad_chains and the tx faults
};

}  // namespace evmm::virtio
