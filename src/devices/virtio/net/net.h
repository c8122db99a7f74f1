// virtio-net (virtio 1.2 §5.1): one receive and one transmit queue (no control queue, no
// multiqueue) over a NetBackend (backend.h), served on the device event loop.
//
// Rules:
//   - Features: MAC (from the config, or derived from the device's index), STATUS (the link is up),
//     MRG_RXBUF, EVENT_IDX and INDIRECT_DESC. No checksum or GSO offload: every frame crosses whole
//     and checksummed, and a transmit header asking for either is the driver's mistake.
//   - Every buffer starts with struct virtio_net_hdr_v1 (12 bytes with VERSION_1, §5.1.6).
//   - Receive: the backend is read only while the guest has receive buffers posted; otherwise the
//     frames wait in the host's socket or tap queue, and the rx notification resumes reading.
//     Frames are read into a host buffer and copied to the guest's: with MRG_RXBUF across as many
//     chains as they need (num_buffers), without it into one. A frame larger than the guest's
//     buffers (one chain; with MRG_RXBUF all it can post) is dropped and counted.
//   - Transmit: the chain is checked (parse_tx), then sent by one writev from guest memory. EAGAIN
//     keeps the chain until the backend's EPOLLOUT; any other backend error drops the frame, counts
//     it and goes on: the queue never wedges.
//   - The backend fd is watched edge-triggered for input and output: an edge with no receive
//     buffers posted is left for the rx notification, so a peer that floods cannot spin the loop.
//
// Threads: the device thread, under the transport's lock (device.h); metrics from anywhere.
#pragma once

#include "devices/virtio/net/net_abi.h"
#include <sys/uio.h>

#include <array>
#include <deque>
#include <memory>
#include <optional>
#include <vector>

#include "devices/virtio/device.h"
#include "devices/virtio/net/backend.h"
#include "devices/virtio/net/net_metrics.h"

namespace evmm::virtio {

using MacAddress = std::array<uint8_t, 6>;

// A locally administered unicast address (02:...) that names evmm and the device's index.
MacAddress derived_mac(unsigned index);

// Checks a transmit chain and gathers its frame, the bytes after the header, into iov (host
// pointers into guest memory). nullopt when the frame may be sent.
std::optional<TxFault> parse_tx(const GuestMemory& mem, const DescriptorChain& chain, std::vector<iovec>& iov);

class NetDevice final : public VirtioDevice {
 public:
  static constexpr uint16_t kRxQueue = 0, kTxQueue = 1;
  static constexpr uint16_t kQueueSize = 256;
  static constexpr size_t kHeaderLen = sizeof(virtio_net_hdr_v1);
  static constexpr size_t kEthHeaderLen = 14;
  // The largest frame either way: a 64 KiB IP packet in an Ethernet frame, what a tap carries.
  static constexpr size_t kMaxFrame = 65535 + kEthHeaderLen;

  static std::shared_ptr<NetDevice> create(NetBackend backend, MacAddress mac);

  DeviceType type() const override { return DeviceType::Net; }
  uint64_t features() const override;
  std::span<const uint16_t> queue_sizes() const override { return kQueueSizes; }
  void read_config(uint64_t offset, std::span<uint8_t> data) const override;
  Result<void> activate(const GuestMemory& mem, std::span<Virtqueue> queues, uint64_t features,
                        VirtioSignals& signals) override;
  void reset() override;
  void notify(uint16_t q) override;
  void init_events(EventOps& ops) override;
  void process_event(const Event& event, EventOps& ops) override;

  const NetMetrics& metrics() const { return metrics_; }
  const NetBackend& backend() const { return backend_; }
  MacAddress mac() const { return mac_; }

 private:
  static constexpr uint16_t kQueueSizes[2] = {kQueueSize, kQueueSize};
  NetDevice(NetBackend backend, MacAddress mac);

  // The queue handler (net_queues.cpp).
  enum class Deliver { Done, Dropped, NeedBuffers };
  void process_rx();
  void process_tx();
  bool pop_rx_chain(bool& added);
  Deliver deliver(size_t len, bool& added);
  void write_chains(size_t count, size_t len);
  ssize_t send_pending();
  void tx_fault(TxFault f);

  NetBackend backend_;
  const MacAddress mac_;
  bool mrg_ = false;
  const GuestMemory* mem_ = nullptr;
  Virtqueue* rx_ = nullptr;
  Virtqueue* tx_ = nullptr;
  VirtioSignals* signals_ = nullptr;

  std::vector<uint8_t> frame_;               // the receive bounce buffer, kMaxFrame + 1 bytes
  size_t frame_len_ = 0;                     // a frame read and not yet delivered (0: none)
  std::deque<DescriptorChain> rx_chains_;     // receive chains popped and not yet used
  DescriptorChain tx_chain_;
  std::vector<iovec> tx_iov_;
  std::vector<uint8_t> tx_linear_;           // a frame of more pieces than writev takes
  bool tx_pending_ = false;                  // tx_chain_ waits for the backend's EPOLLOUT
  NetMetrics metrics_;
};

}  // namespace evmm::virtio
