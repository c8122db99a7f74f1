#include "devices/virtio/net/net.h"

#include "devices/virtio/virtio_abi.h"

#include <sys/epoll.h>

#include <algorithm>
#include <cstring>

#include "base/log.h"

namespace evmm::virtio {

std::string_view to_string(TxFault f) {
  switch (f) {
    case TxFault::WritableBuffer: return "writable buffer in a transmit chain";
    case TxFault::ShortHeader: return "chain shorter than the header";
    case TxFault::Gso: return "GSO not negotiated";
    case TxFault::NeedsCsum: return "checksum offload not negotiated";
    case TxFault::Runt: return "frame shorter than an Ethernet header";
    case TxFault::TooLarge: return "frame too large";
    case TxFault::Memory: return "guest memory refused";
  }
  return "unknown";
}

uint64_t NetMetrics::guest_errors() const {
  uint64_t n = rx_bad_chains.load(std::memory_order_relaxed);
  for (const auto& f : tx_faults) n += f.load(std::memory_order_relaxed);
  return n;
}

MacAddress derived_mac(unsigned index) {
  // 0x02: locally administered, unicast (IEEE 802 §8.2); then "EVM" and the index.
  return {0x02, 'E', 'V', 'M', uint8_t(index >> 8), uint8_t(index)};
}

std::optional<TxFault> parse_tx(const GuestMemory& mem, const DescriptorChain& chain, std::vector<iovec>& iov) {
  iov.clear();
  constexpr size_t kHeader = NetDevice::kHeaderLen;
  if (chain.readable != chain.descs.size()) return TxFault::WritableBuffer;
  if (chain.readable_bytes < kHeader) return TxFault::ShortHeader;
  const uint64_t len = chain.readable_bytes - kHeader;
  if (len < NetDevice::kEthHeaderLen) return TxFault::Runt;
  if (len > NetDevice::kMaxFrame) return TxFault::TooLarge;
  // The header may be split over descriptors (§5.1.6.2 puts no rule on the framing, §2.6.4).
  std::array<uint8_t, kHeader> raw{};
  size_t got = 0;
  for (const Descriptor& d : chain.descs) {
    uint64_t skip = 0;
    if (got < kHeader) {
      skip = std::min<uint64_t>(kHeader - got, d.len);
      if (!mem.read(d.addr, std::span(raw.data() + got, size_t(skip)))) return TxFault::Memory;
      got += size_t(skip);
    }
    if (skip < d.len && !mem.io_vectors(d.addr + skip, d.len - skip, iov)) return TxFault::Memory;
  }
  virtio_net_hdr_v1 hdr;
  std::memcpy(&hdr, raw.data(), sizeof hdr);
  // §5.1.6.2.1: without the offload features the driver sets neither. num_buffers is not checked:
  // Linux leaves it unset when MRG_RXBUF is off (virtio_net_hdr_from_skb clears 10 bytes of 12).
  if (hdr.gso_type != VIRTIO_NET_HDR_GSO_NONE) return TxFault::Gso;
  if (hdr.flags & VIRTIO_NET_HDR_F_NEEDS_CSUM) return TxFault::NeedsCsum;
  return std::nullopt;
}

NetDevice::NetDevice(NetBackend backend, MacAddress mac)
    : backend_(std::move(backend)), mac_(mac), frame_(kMaxFrame + 1) {}

std::shared_ptr<NetDevice> NetDevice::create(NetBackend backend, MacAddress mac) {
  return std::shared_ptr<NetDevice>(new NetDevice(std::move(backend), mac));
}

uint64_t NetDevice::features() const {
  return (1ull << VIRTIO_NET_F_MAC) | (1ull << VIRTIO_NET_F_STATUS) | (1ull << VIRTIO_NET_F_MRG_RXBUF) |
         (1ull << VIRTIO_RING_F_EVENT_IDX) | (1ull << VIRTIO_RING_F_INDIRECT_DESC);
}

void NetDevice::read_config(uint64_t offset, std::span<uint8_t> data) const {
  virtio_net_config cfg{};
  std::memcpy(cfg.mac, mac_.data(), mac_.size());
  cfg.status = VIRTIO_NET_S_LINK_UP;
  cfg.max_virtqueue_pairs = 1;
  // SAFETY: cfg is a trivially copyable local of sizeof cfg bytes.
  auto bytes = std::span(reinterpret_cast<const uint8_t*>(&cfg), sizeof cfg);
  if (offset >= bytes.size()) return;
  auto part = bytes.subspan(size_t(offset), std::min(data.size(), bytes.size() - size_t(offset)));
  std::copy(part.begin(), part.end(), data.begin());
}

Result<void> NetDevice::activate(const GuestMemory& mem, std::span<Virtqueue> queues, uint64_t features,
                                 VirtioSignals& signals) {
  mem_ = &mem;
  rx_ = &queues[kRxQueue];
  tx_ = &queues[kTxQueue];
  signals_ = &signals;
  mrg_ = features & (1ull << VIRTIO_NET_F_MRG_RXBUF);
  return {};
}

void NetDevice::reset() {
  mem_ = nullptr;
  rx_ = tx_ = nullptr;
  signals_ = nullptr;
  mrg_ = false;
  // A frame read for the old driver is lost with it; those still in the backend wait for the next.
  frame_len_ = 0;
  rx_chains_.clear();
  tx_pending_ = false;
  tx_iov_.clear();
}

void NetDevice::notify(uint16_t q) {
  if (q == kRxQueue) process_rx();
  else if (q == kTxQueue) process_tx();
}

void NetDevice::init_events(EventOps& ops) {
  if (auto r = ops.add(backend_.fd(), EPOLLIN | EPOLLOUT | EPOLLET, 0); !r) LOG_ERROR("virtio-net: {}", r.error().message());
}

void NetDevice::process_event(const Event& ev, EventOps&) {
  // Either edge may mean either direction can move (an error, a peer gone): try both; each does
  // nothing without a driver, buffers or a pending frame.
  (void)ev;
  process_rx();
  if (tx_pending_) process_tx();
}

}  // namespace evmm::virtio
