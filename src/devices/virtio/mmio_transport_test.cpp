// The virtio-mmio registers and negotiation (virtio 1.2 §4.2.2, §3.1.1), driven as a guest would.
#include "devices/virtio/mmio_transport.h"

#include <gtest/gtest.h>

#include "devices/virtio/rng/rng.h"
#include "testing/virtio_driver.h"

namespace evmm::virtio {
namespace {

using testing::VirtioTestDriver;
constexpr uint32_t kFeaturesOk = VIRTIO_CONFIG_S_ACKNOWLEDGE | VIRTIO_CONFIG_S_DRIVER | VIRTIO_CONFIG_S_FEATURES_OK;

std::unique_ptr<VirtioTestDriver> rng_driver(RngConfig cfg = {}) {
  return std::make_unique<VirtioTestDriver>(*RngDevice::create(cfg));
}

TEST(MmioTransport, IdentityRegisters) {
  auto d = rng_driver();
  EXPECT_EQ(d->reg(VIRTIO_MMIO_MAGIC_VALUE), MmioTransport::kMagic);
  EXPECT_EQ(d->reg(VIRTIO_MMIO_VERSION), 2u);
  EXPECT_EQ(d->reg(VIRTIO_MMIO_DEVICE_ID), 4u);
  EXPECT_EQ(d->reg(VIRTIO_MMIO_VENDOR_ID), MmioTransport::kVendor);
  EXPECT_TRUE(d->device_features() & (1ull << VIRTIO_F_VERSION_1));
  d->set_reg(VIRTIO_MMIO_QUEUE_SEL, 0);
  EXPECT_EQ(d->reg(VIRTIO_MMIO_QUEUE_NUM_MAX), 256u);
  d->set_reg(VIRTIO_MMIO_QUEUE_SEL, 1);  // no such queue
  EXPECT_EQ(d->reg(VIRTIO_MMIO_QUEUE_NUM_MAX), 0u);
  EXPECT_EQ(d->reg(VIRTIO_MMIO_SHM_LEN_LOW), UINT32_MAX);
}

TEST(MmioTransport, BadAccessesAreCountedNotServed) {
  auto d = rng_driver();
  uint16_t v = 0;
  d->transport->read(BusRead{VIRTIO_MMIO_MAGIC_VALUE, std::span(reinterpret_cast<uint8_t*>(&v), 2), 0});
  EXPECT_EQ(v, 0);
  d->set_reg(0x2, 1);       // misaligned
  d->set_reg(0x0, 1);       // read-only register
  EXPECT_EQ(d->reg(0xf0), 0u);  // unknown
  EXPECT_EQ(d->transport->stats().bad_accesses.load(), 4u);
}

TEST(MmioTransport, FeaturesOkRefusedWithoutVersion1OrWithUnofferedBits) {
  auto d = rng_driver();
  for (uint64_t features : std::vector<uint64_t>{0, (1ull << VIRTIO_F_VERSION_1) | (1ull << 50)}) {
    d->set_reg(VIRTIO_MMIO_STATUS, 0);
    d->set_reg(VIRTIO_MMIO_STATUS, VIRTIO_CONFIG_S_ACKNOWLEDGE | VIRTIO_CONFIG_S_DRIVER);
    d->set_reg(VIRTIO_MMIO_DRIVER_FEATURES_SEL, 0);
    d->set_reg(VIRTIO_MMIO_DRIVER_FEATURES, uint32_t(features));
    d->set_reg(VIRTIO_MMIO_DRIVER_FEATURES_SEL, 1);
    d->set_reg(VIRTIO_MMIO_DRIVER_FEATURES, uint32_t(features >> 32));
    d->set_reg(VIRTIO_MMIO_STATUS, kFeaturesOk);
    EXPECT_FALSE(d->reg(VIRTIO_MMIO_STATUS) & VIRTIO_CONFIG_S_FEATURES_OK) << std::hex << features;
  }
  EXPECT_EQ(d->transport->stats().refused_features.load(), 2u);
  EXPECT_TRUE(d->init(0, 1) & VIRTIO_CONFIG_S_DRIVER_OK);
  EXPECT_EQ(d->transport->driver_features(), 1ull << VIRTIO_F_VERSION_1);
}

TEST(MmioTransport, StatusBitsOnlyGrowUntilReset) {
  auto d = rng_driver();
  ASSERT_TRUE(d->init(0, 1) & VIRTIO_CONFIG_S_DRIVER_OK);
  d->set_reg(VIRTIO_MMIO_STATUS, VIRTIO_CONFIG_S_ACKNOWLEDGE);  // clears bits: refused
  EXPECT_TRUE(d->reg(VIRTIO_MMIO_STATUS) & VIRTIO_CONFIG_S_DRIVER_OK);
  d->set_reg(VIRTIO_MMIO_STATUS, 0);
  EXPECT_EQ(d->reg(VIRTIO_MMIO_STATUS), 0u);
  EXPECT_EQ(d->reg(VIRTIO_MMIO_QUEUE_READY), 0u);
  EXPECT_EQ(d->transport->stats().resets.load(), 1u + 1u);  // init() resets first too
}

TEST(MmioTransport, BadRingLayoutSetsNeedsReset) {
  auto d = rng_driver();
  d->set_reg(VIRTIO_MMIO_STATUS, VIRTIO_CONFIG_S_ACKNOWLEDGE | VIRTIO_CONFIG_S_DRIVER);
  d->set_reg(VIRTIO_MMIO_DRIVER_FEATURES_SEL, 1);
  d->set_reg(VIRTIO_MMIO_DRIVER_FEATURES, 1);  // VERSION_1
  d->set_reg(VIRTIO_MMIO_STATUS, kFeaturesOk);
  d->set_reg(VIRTIO_MMIO_QUEUE_SEL, 0);
  d->set_reg(VIRTIO_MMIO_QUEUE_NUM, 100);  // not a power of two
  d->set_reg(VIRTIO_MMIO_QUEUE_READY, 1);
  EXPECT_EQ(d->reg(VIRTIO_MMIO_QUEUE_READY), 0u);
  EXPECT_TRUE(d->reg(VIRTIO_MMIO_STATUS) & VIRTIO_CONFIG_S_NEEDS_RESET);
  EXPECT_EQ(d->transport->queue_fault(QueueFault::BadRing), 1u);
  // A ring outside RAM is refused the same way after a reset.
  d->set_reg(VIRTIO_MMIO_STATUS, 0);
  d->set_reg(VIRTIO_MMIO_QUEUE_NUM, 16);
  d->set_reg(VIRTIO_MMIO_QUEUE_USED_HIGH, 1);  // 4 GiB up
  d->set_reg(VIRTIO_MMIO_QUEUE_READY, 1);
  EXPECT_EQ(d->reg(VIRTIO_MMIO_QUEUE_READY), 0u);
  EXPECT_EQ(d->transport->queue_fault(QueueFault::BadRing), 2u);
}

TEST(MmioTransport, NotifyThroughTheIoEventFdAndInterruptAck) {
  auto d = rng_driver();
  ASSERT_TRUE(d->init(0, 1) & VIRTIO_CONFIG_S_DRIVER_OK);
  d->submit(0, {{0x200000, 32, true}});
  d->notify(0);
  auto used = d->next_used(0);
  ASSERT_TRUE(used);
  EXPECT_EQ(used->len, 32u);
  EXPECT_EQ(d->irq->edges.load(), 1);
  EXPECT_EQ(d->reg(VIRTIO_MMIO_INTERRUPT_STATUS), uint32_t(VIRTIO_MMIO_INT_VRING));
  d->set_reg(VIRTIO_MMIO_INTERRUPT_ACK, VIRTIO_MMIO_INT_VRING);
  EXPECT_EQ(d->reg(VIRTIO_MMIO_INTERRUPT_STATUS), 0u);
  // A notify naming no queue reaches the registers and is counted.
  d->set_reg(VIRTIO_MMIO_QUEUE_NOTIFY, 7);
  EXPECT_EQ(d->transport->stats().bad_notifies.load(), 1u);
}

TEST(MmioTransport, NotifyBeforeDriverOkServesNothing) {
  auto d = rng_driver();
  d->set_reg(VIRTIO_MMIO_STATUS, VIRTIO_CONFIG_S_ACKNOWLEDGE);
  d->notify(0);
  EXPECT_EQ(d->irq->edges.load(), 0);
}

TEST(MmioTransport, CmdlineEntry) {
  EXPECT_EQ(cmdline_entry(0xd0001000, 5), "virtio_mmio.device=512@0xd0001000:5");
}

TEST(VirtioRng, FillsWritableBuffersAndRefusesReadableOnes) {
  auto d = rng_driver();
  ASSERT_TRUE(d->init(1ull << VIRTIO_RING_F_EVENT_IDX, 1) & VIRTIO_CONFIG_S_DRIVER_OK);
  d->submit(0, {{0x200000, 4096, true}, {0x201000, 100, true}});
  d->submit(0, {{0x202000, 16, false}});
  d->notify(0);
  auto a = d->next_used(0), b = d->next_used(0);
  ASSERT_TRUE(a && b);
  EXPECT_EQ(a->len, 4196u);
  EXPECT_EQ(b->len, 0u);
  std::vector<uint8_t> bytes(4096);
  ASSERT_TRUE(d->mem.read(GuestAddress(0x200000), bytes));
  EXPECT_GT(std::count_if(bytes.begin(), bytes.end(), [](uint8_t x) { return x != 0; }), 3800);
  auto& m = static_cast<RngDevice&>(d->transport->device()).metrics();
  EXPECT_EQ(m.bad_requests.load(), 1u);
  EXPECT_EQ(m.bytes.load(), 4196u);
}

TEST(VirtioRng, RateLimitGivesShortReadsThenWaits) {
  auto d = rng_driver(RngConfig{.rate = 1000, .burst = 100});
  ASSERT_TRUE(d->init(0, 1) & VIRTIO_CONFIG_S_DRIVER_OK);
  d->submit(0, {{0x200000, 4096, true}});
  d->submit(0, {{0x201000, 4096, true}});
  d->notify(0);
  auto a = d->next_used(0);
  ASSERT_TRUE(a);
  EXPECT_EQ(a->len, 100u);  // the burst
  EXPECT_FALSE(d->next_used(0));  // the second waits for tokens
  auto& m = static_cast<RngDevice&>(d->transport->device()).metrics();
  EXPECT_EQ(m.throttled.load(), 1u);
  // The timer fires within a few ms and serves the second from the refilled bucket.
  for (int i = 0; i < 200 && d->used_idx(0) < 2; ++i) (void)d->loop->run_once(10);
  auto b = d->next_used(0);
  ASSERT_TRUE(b);
  EXPECT_GE(b->len, 1u);
  EXPECT_LE(b->len, 100u);
}

TEST(TokenBucket, RefillsAtItsRateUpToTheBurst) {
  TokenBucket b(1000, 10, 0);
  EXPECT_EQ(b.take(50, 0), 10u);
  EXPECT_EQ(b.take(1, 0), 0u);
  EXPECT_EQ(b.wait_ns(0), 1'000'000u);
  EXPECT_EQ(b.take(50, 5'000'000), 5u);  // 5 ms: 5 tokens
  EXPECT_EQ(b.take(50, 1'000'000'000), 10u);  // capped by the burst
  TokenBucket unlimited(0, 0, 0);
  EXPECT_EQ(unlimited.take(1 << 30, 0), 1u << 30);
}

}  // namespace
}  // namespace evmm::virtio
