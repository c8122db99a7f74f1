// virtio-net's transmit path (devices/virtio/net/): the queue walker and parse_tx on a transmit
// ring the input writes raw, the backend one end of a Unix datagram socketpair.
// Input: a flags byte (bit 0 EVENT_IDX, bit 1 INDIRECT_DESC, bit 2 MRG_RXBUF, bit 3 raw
// addresses), a chain count (at most 16) and that many head indexes, 16 raw descriptors
// (addr u64, len u32, flags u16, next u16; without bit 3 the address is folded into a 256 KiB data
// area and the length below 64 KiB + 64), then the data area's bytes (headers, indirect tables).
// Invariants from net.h: every frame the peer receives is one whole Ethernet frame of 14 to
// kMaxFrame bytes; each chain published is sent, refused (by the walker or parse_tx) or dropped
// by the backend, and counted once; a chain held while the backend is full is sent once the peer
// drains it.
#include <sys/socket.h>

#include "devices/virtio/net/net.h"
#include "fuzz_input.h"
#include "testing/virtio_driver.h"

using namespace evmm;

namespace {
constexpr uint64_t kArea = 0x200000, kAreaSize = 0x40000;
}  // namespace

extern "C" int LLVMFuzzerInitialize(int*, char***) {
  fuzz_quiet_logs();
  return 0;
}

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  fuzz::Input in(data, size);
  const uint8_t flags = in.u8();
  int sv[2];
  if (::socketpair(AF_UNIX, SOCK_DGRAM | SOCK_CLOEXEC, 0, sv) != 0) return 0;
  UniqueFd peer(sv[1]);
  auto backend = virtio::NetBackend::adopt(UniqueFd(sv[0]), virtio::NetBackend::Kind::Socket);
  if (!backend) return 0;
  auto dev = virtio::NetDevice::create(std::move(*backend), virtio::derived_mac(0));
  testing::VirtioTestDriver drv(dev);
  uint64_t features = 0;
  if (flags & 1) features |= 1ull << VIRTIO_RING_F_EVENT_IDX;
  if (flags & 2) features |= 1ull << VIRTIO_RING_F_INDIRECT_DESC;
  if (flags & 4) features |= 1ull << VIRTIO_NET_F_MRG_RXBUF;
  FUZZ_CHECK(drv.init(features, 2) & VIRTIO_CONFIG_S_DRIVER_OK);

  const uint16_t q = virtio::NetDevice::kTxQueue, n = testing::VirtioTestDriver::kQueueSize;
  const unsigned chains = in.u8() % (n + 1);
  std::vector<uint16_t> heads;
  for (unsigned i = 0; i < chains; ++i) heads.push_back(uint16_t(in.u8() % (n + 2)));  // n, n+1: out of range
  for (uint16_t i = 0; i < n; ++i) {
    uint64_t addr = in.le(8);
    uint32_t len = uint32_t(in.le(4));
    uint16_t dflags = uint16_t(in.le(2)), next = uint16_t(in.le(2));
    if (!(flags & 8)) {
      addr = kArea + addr % kAreaSize;
      len %= 0x10040;
    }
    drv.write_desc(q, i, addr, len, dflags, next);
  }
  auto area = in.rest();
  (void)drv.mem.write(GuestAddress(kArea), area.first(std::min<size_t>(area.size(), kAreaSize)));
  for (uint16_t h : heads) drv.publish(q, h);
  drv.notify(q);

  const auto& m = dev->metrics();
  uint64_t frames = 0;
  std::vector<uint8_t> buf(virtio::NetDevice::kMaxFrame + 2);
  // The send buffer holds a few of the largest frames: drain it, and the device's EPOLLOUT edge
  // sends the rest.
  for (int turn = 0; turn <= 32; ++turn) {
    if (turn > 0) drv.run();
    for (ssize_t got; (got = ::recv(peer.get(), buf.data(), buf.size(), MSG_DONTWAIT)) >= 0; ++frames)
      FUZZ_CHECK(size_t(got) >= virtio::NetDevice::kEthHeaderLen && size_t(got) <= virtio::NetDevice::kMaxFrame);
  }
  FUZZ_CHECK(frames == m.tx_frames.load());
  uint64_t faults = 0;
  for (const auto& f : m.tx_faults) faults += f.load();
  const uint64_t refused_by_walker = drv.transport->queue_faults();
  FUZZ_CHECK(m.tx_frames.load() + faults + m.tx_backend_errors.load() + refused_by_walker == chains);
  return 0;
}
