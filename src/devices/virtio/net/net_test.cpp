// virtio-net driven as a guest would (testing/virtio_driver.h), its backend one end of a Unix
// datagram socketpair whose other end plays the network.
#include "devices/virtio/net/net.h"

#include <gtest/gtest.h>
#include <sys/socket.h>

#include <numeric>

#include "testing/virtio_driver.h"

namespace evmm::virtio {
namespace {

using testing::VirtioTestDriver;
constexpr uint64_t kMrg = 1ull << VIRTIO_NET_F_MRG_RXBUF;
constexpr uint64_t kEventIdx = 1ull << VIRTIO_RING_F_EVENT_IDX;
constexpr uint64_t kData = 0x200000;  // guest buffers from here

struct NetRig {
  explicit NetRig(uint64_t features, int sndbuf = 0) {
    int sv[2];
    EXPECT_EQ(::socketpair(AF_UNIX, SOCK_DGRAM | SOCK_CLOEXEC, 0, sv), 0);
    peer = UniqueFd(sv[1]);
    if (sndbuf) {
      EXPECT_EQ(::setsockopt(sv[0], SOL_SOCKET, SO_SNDBUF, &sndbuf, sizeof sndbuf), 0);
    }
    auto backend = NetBackend::adopt(UniqueFd(sv[0]), NetBackend::Kind::Socket);
    dev = NetDevice::create(std::move(*backend), derived_mac(3));
    drv = std::make_unique<VirtioTestDriver>(dev);
    status = drv->init(features, 2);
  }
  std::vector<uint8_t> frame(size_t n, uint8_t seed) {
    std::vector<uint8_t> f(n);
    std::iota(f.begin(), f.end(), seed);
    return f;
  }
  // The guest transmits hdr + frame from one readable buffer.
  void transmit(const std::vector<uint8_t>& f, virtio_net_hdr_v1 hdr = {}, uint64_t at = kData) {
    ASSERT_TRUE(drv->mem.write_obj(GuestAddress(at), hdr));
    ASSERT_TRUE(drv->mem.write(GuestAddress(at + 12), f));
    drv->submit(NetDevice::kTxQueue, {{at, uint32_t(12 + f.size()), false}});
  }
  std::optional<std::vector<uint8_t>> peer_recv() {
    std::vector<uint8_t> b(70000);
    ssize_t n = ::recv(peer.get(), b.data(), b.size(), MSG_DONTWAIT);
    if (n < 0) return std::nullopt;
    b.resize(size_t(n));
    return b;
  }
  void peer_send(const std::vector<uint8_t>& f) { ASSERT_EQ(::send(peer.get(), f.data(), f.size(), 0), ssize_t(f.size())); }
  std::vector<uint8_t> guest_bytes(uint64_t at, size_t n) {
    std::vector<uint8_t> b(n);
    EXPECT_TRUE(drv->mem.read(GuestAddress(at), b));
    return b;
  }
  virtio_net_hdr_v1 guest_header(uint64_t at) { return *drv->mem.read_obj<virtio_net_hdr_v1>(GuestAddress(at)); }
  const NetMetrics& m() const { return dev->metrics(); }

  UniqueFd peer;
  std::shared_ptr<NetDevice> dev;
  std::unique_ptr<VirtioTestDriver> drv;
  uint32_t status = 0;
};

TEST(VirtioNet, FeaturesAndConfig) {
  NetRig r(0);
  uint64_t f = r.drv->device_features();
  for (unsigned bit : {unsigned(VIRTIO_NET_F_MAC), unsigned(VIRTIO_NET_F_STATUS), unsigned(VIRTIO_NET_F_MRG_RXBUF),
                       unsigned(VIRTIO_RING_F_EVENT_IDX), unsigned(VIRTIO_RING_F_INDIRECT_DESC), unsigned(VIRTIO_F_VERSION_1)})
    EXPECT_TRUE(f & (1ull << bit)) << bit;
  for (unsigned bit : {unsigned(VIRTIO_NET_F_CSUM), unsigned(VIRTIO_NET_F_GUEST_CSUM), unsigned(VIRTIO_NET_F_HOST_TSO4),
                       unsigned(VIRTIO_NET_F_CTRL_VQ), unsigned(VIRTIO_NET_F_MQ)})
    EXPECT_FALSE(f & (1ull << bit)) << bit;
  uint8_t mac[6];
  for (int i = 0; i < 6; ++i) mac[i] = uint8_t(r.drv->reg(VIRTIO_MMIO_CONFIG + i) & 0xff);
  EXPECT_EQ(std::vector<uint8_t>(mac, mac + 6), (std::vector<uint8_t>{0x02, 'E', 'V', 'M', 0, 3}));
  EXPECT_EQ(r.drv->reg(VIRTIO_MMIO_CONFIG + 6) & 0xffff, uint32_t(VIRTIO_NET_S_LINK_UP));
}

TEST(VirtioNet, TransmitSendsOneDatagramPerFrame) {
  NetRig r(kEventIdx);
  ASSERT_TRUE(r.status & VIRTIO_CONFIG_S_DRIVER_OK);
  auto f = r.frame(60, 1);
  r.transmit(f);
  // The header in its own buffer and the frame split over two, as Linux may lay it out.
  ASSERT_TRUE(r.drv->mem.write(GuestAddress(kData + 0x1000), r.frame(100, 7)));
  ASSERT_TRUE(r.drv->mem.fill(GuestAddress(kData + 0x2000), 0, 12));
  r.drv->submit(1, {{kData + 0x2000, 12, false}, {kData + 0x1000, 30, false}, {kData + 0x101e, 70, false}});
  r.drv->notify(1);
  EXPECT_EQ(r.peer_recv(), f);
  EXPECT_EQ(r.peer_recv(), r.frame(100, 7));
  EXPECT_FALSE(r.peer_recv());
  auto u = r.drv->next_used(1);
  ASSERT_TRUE(u);
  EXPECT_EQ(u->len, 0u);
  EXPECT_TRUE(r.drv->next_used(1));
  EXPECT_EQ(r.m().tx_frames.load(), 2u);
  EXPECT_EQ(r.m().tx_bytes.load(), 160u);
  EXPECT_GE(r.drv->irq->edges.load(), 1);
}

TEST(VirtioNet, TransmitRefusesBadHeadersAndChainsAndGoesOn) {
  NetRig r(0);
  virtio_net_hdr_v1 gso{};
  gso.gso_type = VIRTIO_NET_HDR_GSO_TCPV4;
  virtio_net_hdr_v1 csum{};
  csum.flags = VIRTIO_NET_HDR_F_NEEDS_CSUM;
  virtio_net_hdr_v1 stray{};
  stray.num_buffers = 7;  // not checked: Linux leaves it unset without MRG_RXBUF
  stray.flags = VIRTIO_NET_HDR_F_DATA_VALID;  // unknown on transmit: ignored (§5.1.6.2.2)
  r.transmit(r.frame(60, 0), gso, kData);
  r.transmit(r.frame(60, 0), csum, kData + 0x1000);
  r.transmit(r.frame(10, 0), {}, kData + 0x2000);                       // runt
  r.drv->submit(1, {{kData + 0x3000, 8, false}});                       // no whole header
  r.drv->submit(1, {{kData + 0x4000, 80, false}, {kData + 0x5000, 10, true}});  // writable
  r.transmit(r.frame(NetDevice::kMaxFrame + 1, 0), {}, kData + 0x10000);  // too large
  r.transmit(r.frame(60, 9), stray, kData + 0x6000);
  r.drv->notify(1);
  for (TxFault f : {TxFault::Gso, TxFault::NeedsCsum, TxFault::Runt, TxFault::ShortHeader, TxFault::WritableBuffer,
                    TxFault::TooLarge})
    EXPECT_EQ(r.m().tx_fault(f), 1u) << to_string(f);
  EXPECT_EQ(r.m().guest_errors(), 6u);
  EXPECT_EQ(r.peer_recv(), r.frame(60, 9));  // the good one after them all
  EXPECT_FALSE(r.peer_recv());
  EXPECT_EQ(r.drv->used_idx(1), 7);
}

TEST(VirtioNet, ReceiveWritesHeaderAndFrame) {
  NetRig r(kEventIdx);
  r.drv->submit(0, {{kData, 2048, true}});
  r.drv->notify(0);
  auto f = r.frame(98, 3);
  r.peer_send(f);
  r.drv->run();
  auto u = r.drv->next_used(0);
  ASSERT_TRUE(u);
  EXPECT_EQ(u->len, 12u + 98u);
  auto h = r.guest_header(kData);
  EXPECT_EQ(h.num_buffers, 1);
  EXPECT_EQ(h.gso_type, VIRTIO_NET_HDR_GSO_NONE);
  EXPECT_EQ(r.guest_bytes(kData + 12, 98), f);
  EXPECT_EQ(r.m().rx_frames.load(), 1u);
}

TEST(VirtioNet, FramesWaitInTheBackendUntilBuffersArePosted) {
  NetRig r(kEventIdx);
  r.peer_send(r.frame(60, 1));
  r.peer_send(r.frame(61, 2));
  r.drv->run();
  EXPECT_FALSE(r.drv->next_used(0));
  EXPECT_EQ(r.m().rx_frames.load(), 0u);
  r.drv->submit(0, {{kData, 1600, true}});
  r.drv->notify(0);
  auto u = r.drv->next_used(0);
  ASSERT_TRUE(u);
  EXPECT_EQ(u->len, 72u);
  EXPECT_EQ(r.guest_bytes(kData + 12, 60), r.frame(60, 1));
  EXPECT_FALSE(r.drv->next_used(0));  // the second waits, not dropped
  r.drv->submit(0, {{kData + 0x1000, 1600, true}});
  r.drv->notify(0);
  u = r.drv->next_used(0);
  ASSERT_TRUE(u);
  EXPECT_EQ(u->len, 73u);
  EXPECT_EQ(r.guest_bytes(kData + 0x1000 + 12, 61), r.frame(61, 2));
  EXPECT_EQ(r.m().rx_too_big.load(), 0u);
}

TEST(VirtioNet, FrameLargerThanTheBufferIsDroppedAndTheBufferKept) {
  NetRig r(0);
  r.drv->submit(0, {{kData, 100, true}});
  r.drv->notify(0);
  r.peer_send(r.frame(200, 0));
  r.peer_send(r.frame(80, 5));
  r.drv->run();
  EXPECT_EQ(r.m().rx_too_big.load(), 1u);
  auto u = r.drv->next_used(0);
  ASSERT_TRUE(u);
  EXPECT_EQ(u->len, 92u);
  EXPECT_EQ(r.guest_bytes(kData + 12, 80), r.frame(80, 5));
}

TEST(VirtioNet, MergeableBuffersCarryALargeFrame) {
  NetRig r(kMrg | kEventIdx);
  r.drv->submit(0, {{kData, 64, true}});
  r.drv->notify(0);
  auto f = r.frame(150, 4);
  r.peer_send(f);
  r.drv->run();
  EXPECT_FALSE(r.drv->next_used(0));  // 12 + 150 bytes wait for more buffers
  EXPECT_EQ(r.m().rx_waits.load(), 1u);
  r.drv->submit(0, {{kData + 0x1000, 64, true}});
  r.drv->submit(0, {{kData + 0x2000, 64, true}});
  r.drv->notify(0);
  std::vector<uint32_t> lens;
  while (auto u = r.drv->next_used(0)) lens.push_back(u->len);
  EXPECT_EQ(lens, (std::vector<uint32_t>{64, 64, 34}));
  EXPECT_EQ(r.guest_header(kData).num_buffers, 3);
  std::vector<uint8_t> got = r.guest_bytes(kData + 12, 52);
  for (uint64_t at : {kData + 0x1000, kData + 0x2000}) {
    auto part = r.guest_bytes(at, at == kData + 0x2000 ? 34 : 64);
    got.insert(got.end(), part.begin(), part.end());
  }
  EXPECT_EQ(got, f);
}

TEST(VirtioNet, ReceiveChainsThatCannotHoldAHeaderAreRefused) {
  NetRig r(0);
  r.drv->submit(0, {{kData, 8, true}});                               // shorter than the header
  r.drv->submit(0, {{kData + 0x1000, 16, false}, {kData + 0x2000, 100, true}});  // readable
  r.drv->submit(0, {{kData + 0x3000, 1600, true}});
  r.drv->notify(0);
  r.peer_send(r.frame(60, 0));
  r.drv->run();
  EXPECT_EQ(r.m().rx_bad_chains.load(), 2u);
  std::vector<uint32_t> lens;
  while (auto u = r.drv->next_used(0)) lens.push_back(u->len);
  EXPECT_EQ(lens, (std::vector<uint32_t>{0, 0, 72}));
}

TEST(VirtioNet, BackendFullHoldsTheChainUntilItDrains) {
  NetRig r(0, 4096);  // a small send buffer: a few frames fill it
  for (int i = 0; i < 8; ++i) r.transmit(r.frame(1500, uint8_t(i)), {}, kData + 0x1000 * uint64_t(i));
  r.drv->notify(1);
  EXPECT_GT(r.m().tx_blocked.load(), 0u);
  uint64_t sent = r.m().tx_frames.load();
  ASSERT_LT(sent, 8u);
  EXPECT_EQ(r.drv->used_idx(1), sent);  // the blocked chain is not returned yet
  std::vector<std::vector<uint8_t>> got;
  for (int turn = 0; turn < 50 && got.size() < 8; ++turn) {
    while (auto f = r.peer_recv()) got.push_back(*f);
    r.drv->run();  // the EPOLLOUT edge resumes transmission
  }
  ASSERT_EQ(got.size(), 8u);
  for (int i = 0; i < 8; ++i) EXPECT_EQ(got[size_t(i)], r.frame(1500, uint8_t(i))) << i;
  EXPECT_EQ(r.drv->used_idx(1), 8);
  EXPECT_EQ(r.m().tx_backend_errors.load(), 0u);
}

TEST(VirtioNet, BackendErrorsDropTheFrameAndTheQueueGoesOn) {
  NetRig r(0);
  r.peer.reset();  // the network is gone
  r.transmit(r.frame(60, 0));
  r.transmit(r.frame(60, 1), {}, kData + 0x1000);
  r.drv->notify(1);
  EXPECT_EQ(r.drv->used_idx(1), 2);
  EXPECT_EQ(r.m().tx_backend_errors.load(), 2u);
  EXPECT_EQ(r.m().tx_frames.load(), 0u);
}

TEST(VirtioNet, ResetDropsHeldChainsAndServesTheNextDriver) {
  NetRig r(kMrg);
  r.drv->submit(0, {{kData, 64, true}});
  r.drv->notify(0);
  r.peer_send(r.frame(150, 0));  // waits, holding the one buffer
  r.drv->run();
  ASSERT_TRUE(r.drv->init(0, 2) & VIRTIO_CONFIG_S_DRIVER_OK);
  r.drv->submit(0, {{kData, 1600, true}});
  r.drv->notify(0);
  r.peer_send(r.frame(70, 1));
  r.drv->run();
  auto u = r.drv->next_used(0);
  ASSERT_TRUE(u);
  EXPECT_EQ(u->len, 82u);  // the frame held at reset went with the old driver
  EXPECT_EQ(r.guest_bytes(kData + 12, 70), r.frame(70, 1));
}

TEST(VirtioNet, SocketBackendNeedsABoundPeer) {
  auto b = NetBackend::connect_socket("/nonexistent/evmm-net.sock");
  ASSERT_FALSE(b);
  EXPECT_NE(b.error().message().find("peer must already be bound"), std::string::npos) << b.error().message();
}

}  // namespace
}  // namespace evmm::virtio
