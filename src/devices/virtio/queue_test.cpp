// The split-queue walker against every kind of malformed chain, through the MMIO transport: each is
// refused, counted by its kind, returned to the driver, and good chains on the same queue and on
// another queue are still served.
#include "devices/virtio/queue.h"

#include <gtest/gtest.h>

#include "testing/virtio_driver.h"

namespace evmm::virtio {
namespace {

using testing::Buf;
using testing::VirtioTestDriver;

// Two queues; every chain served is recorded and answered with its writable byte count.
class RecordingDevice final : public VirtioDevice {
 public:
  DeviceType type() const override { return DeviceType::Rng; }
  uint64_t features() const override { return (1ull << VIRTIO_RING_F_INDIRECT_DESC) | (1ull << VIRTIO_RING_F_EVENT_IDX); }
  std::span<const uint16_t> queue_sizes() const override { return sizes_; }
  void read_config(uint64_t, std::span<uint8_t>) const override {}
  Result<void> activate(const GuestMemory&, std::span<Virtqueue> q, uint64_t, VirtioSignals& s) override {
    queues_ = q;
    signals_ = &s;
    return {};
  }
  void reset() override { queues_ = {}; }
  void notify(uint16_t q) override {
    DescriptorChain c;
    while (queues_[q].pop(c) == Virtqueue::Pop::Chain) {
      served.push_back(c);
      queues_[q].add_used(c.head, uint32_t(c.writable_bytes));
    }
    signals_->used(q);
  }
  std::vector<DescriptorChain> served;

 private:
  std::array<uint16_t, 2> sizes_{VirtioTestDriver::kQueueSize, VirtioTestDriver::kQueueSize};
  std::span<Virtqueue> queues_;
  VirtioSignals* signals_ = nullptr;
};

class QueueWalk : public ::testing::Test {
 protected:
  void SetUp() override {
    dev_ = std::make_shared<RecordingDevice>();
    d_ = std::make_unique<VirtioTestDriver>(dev_);
    ASSERT_TRUE(d_->init((1ull << VIRTIO_RING_F_INDIRECT_DESC), 2) & VIRTIO_CONFIG_S_DRIVER_OK);
  }
  // A malformed chain is refused with `fault`, and good chains on both queues are served after it.
  void expect_refused(QueueFault fault, bool returned = true) {
    d_->notify(0);
    EXPECT_EQ(d_->transport->queue_fault(fault), 1u) << to_string(fault);
    EXPECT_EQ(d_->transport->queue_faults(), 1u);
    EXPECT_TRUE(dev_->served.empty());
    auto used = d_->next_used(0);
    if (returned) {
      ASSERT_TRUE(used);
      EXPECT_EQ(used->len, 0u);
    } else {
      EXPECT_FALSE(used);
    }
    expect_still_serving();
  }
  void expect_still_serving() {
    d_->submit(0, {{0x200000, 64, false}, {0x201000, 32, true}});
    d_->notify(0);
    d_->submit(1, {{0x202000, 16, true}});
    d_->notify(1);
    ASSERT_EQ(dev_->served.size(), 2u);
    EXPECT_EQ(dev_->served[0].readable_bytes, 64u);
    EXPECT_EQ(dev_->served[0].writable_bytes, 32u);
    EXPECT_EQ(dev_->served[1].writable_bytes, 16u);
    EXPECT_FALSE(d_->transport->status() & VIRTIO_CONFIG_S_NEEDS_RESET);
  }
  // Puts descriptors 10.. to use so that submit() (which starts at 0) never overwrites them.
  static constexpr uint16_t kBad = 10;
  std::shared_ptr<RecordingDevice> dev_;
  std::unique_ptr<VirtioTestDriver> d_;
};

TEST_F(QueueWalk, GoodChainIsCopiedInOrder) {
  d_->submit(0, {{0x200000, 100, false}, {0x201000, 50, false}, {0x202000, 10, true}});
  d_->notify(0);
  ASSERT_EQ(dev_->served.size(), 1u);
  const auto& c = dev_->served[0];
  EXPECT_EQ(c.readable, 2u);
  ASSERT_EQ(c.descs.size(), 3u);
  EXPECT_EQ(c.descs[1].addr.raw(), 0x201000u);
  EXPECT_TRUE(c.descs[2].writable);
  auto used = d_->next_used(0);
  ASSERT_TRUE(used);
  EXPECT_EQ(used->len, 10u);
  EXPECT_GE(d_->irq->edges.load(), 1);
}

TEST_F(QueueWalk, HeadOutOfRange) {
  d_->publish(0, VirtioTestDriver::kQueueSize);
  expect_refused(QueueFault::HeadOutOfRange, /*returned=*/false);
}

TEST_F(QueueWalk, NextOutOfRange) {
  d_->write_desc(0, kBad, 0x200000, 8, VRING_DESC_F_NEXT, 99);
  d_->publish(0, kBad);
  expect_refused(QueueFault::NextOutOfRange);
}

TEST_F(QueueWalk, Loop) {
  d_->write_desc(0, kBad, 0x200000, 8, VRING_DESC_F_NEXT, kBad + 1);
  d_->write_desc(0, kBad + 1, 0x200000, 8, VRING_DESC_F_NEXT, kBad);
  d_->publish(0, kBad);
  expect_refused(QueueFault::Loop);
}

TEST_F(QueueWalk, BufferOutsideRam) {
  d_->write_desc(0, kBad, (16 << 20) - 8, 16, 0, 0);  // straddles the end of RAM
  d_->publish(0, kBad);
  expect_refused(QueueFault::OutsideRam);
}

TEST_F(QueueWalk, ReadableAfterWritable) {
  d_->write_desc(0, kBad, 0x200000, 8, VRING_DESC_F_NEXT | VRING_DESC_F_WRITE, kBad + 1);
  d_->write_desc(0, kBad + 1, 0x201000, 8, 0, 0);
  d_->publish(0, kBad);
  expect_refused(QueueFault::ReadableAfterWritable);
}

TEST_F(QueueWalk, TooLarge) {
  // 600 descriptors naming the same 8 MiB: 4.7 GiB in all, more than a used length can say.
  for (uint16_t i = 0; i < 600; ++i) {
    vring_desc d{0, 8 << 20, uint16_t(VRING_DESC_F_WRITE | (i + 1 < 600 ? VRING_DESC_F_NEXT : 0)), uint16_t(i + 1)};
    ASSERT_TRUE(d_->mem.write_obj(GuestAddress(0x300000 + 16 * i), d));
  }
  d_->write_desc(0, kBad, 0x300000, 16 * 600, VRING_DESC_F_INDIRECT, 0);
  d_->publish(0, kBad);
  expect_refused(QueueFault::TooLarge);
}

TEST_F(QueueWalk, ChainLongerThanQueue) {
  // 17 distinct descriptors cannot be in a table of 16; a direct chain is bounded by the queue size,
  // which with distinct indexes means a loop is found first: walk 0..15 then back to 0.
  for (uint16_t i = 0; i < VirtioTestDriver::kQueueSize; ++i)
    d_->write_desc(0, i, 0x200000, 8, VRING_DESC_F_NEXT, uint16_t((i + 1) % VirtioTestDriver::kQueueSize));
  d_->publish(0, 0);
  d_->notify(0);
  EXPECT_EQ(d_->transport->queue_fault(QueueFault::Loop), 1u);
}

TEST_F(QueueWalk, IndirectTableIsWalked) {
  // Three descriptors in an indirect table at 0x300000.
  for (int i = 0; i < 3; ++i) {
    vring_desc d{0x200000ull + i * 0x1000, 8, uint16_t(i < 2 ? VRING_DESC_F_NEXT : VRING_DESC_F_WRITE), uint16_t(i + 1)};
    ASSERT_TRUE(d_->mem.write_obj(GuestAddress(0x300000 + 16 * i), d));
  }
  d_->write_desc(0, kBad, 0x300000, 48, VRING_DESC_F_INDIRECT, 0);
  d_->publish(0, kBad);
  d_->notify(0);
  ASSERT_EQ(dev_->served.size(), 1u);
  EXPECT_EQ(dev_->served[0].descs.size(), 3u);
  EXPECT_EQ(dev_->served[0].readable, 2u);
}

TEST_F(QueueWalk, IndirectNested) {
  vring_desc inner{0x300100, 16, VRING_DESC_F_INDIRECT, 0};
  ASSERT_TRUE(d_->mem.write_obj(GuestAddress(0x300000), inner));
  d_->write_desc(0, kBad, 0x300000, 16, VRING_DESC_F_INDIRECT, 0);
  d_->publish(0, kBad);
  expect_refused(QueueFault::IndirectNested);
}

TEST_F(QueueWalk, IndirectWithNext) {
  d_->write_desc(0, kBad, 0x300000, 16, VRING_DESC_F_INDIRECT | VRING_DESC_F_NEXT, kBad + 1);
  d_->publish(0, kBad);
  expect_refused(QueueFault::IndirectWithNext);
}

TEST_F(QueueWalk, IndirectBadLength) {
  d_->write_desc(0, kBad, 0x300000, 20, VRING_DESC_F_INDIRECT, 0);
  d_->publish(0, kBad);
  expect_refused(QueueFault::IndirectBadLength);
}

TEST_F(QueueWalk, IndirectTooLong) {
  d_->write_desc(0, kBad, 0x300000, 16 * (Virtqueue::kMaxIndirect + 1), VRING_DESC_F_INDIRECT, 0);
  d_->publish(0, kBad);
  expect_refused(QueueFault::ChainTooLong);
}

TEST_F(QueueWalk, IndirectLoop) {
  vring_desc a{0x200000, 8, VRING_DESC_F_NEXT, 1}, b{0x200000, 8, VRING_DESC_F_NEXT, 0};
  ASSERT_TRUE(d_->mem.write_obj(GuestAddress(0x300000), a));
  ASSERT_TRUE(d_->mem.write_obj(GuestAddress(0x300010), b));
  d_->write_desc(0, kBad, 0x300000, 32, VRING_DESC_F_INDIRECT, 0);
  d_->publish(0, kBad);
  expect_refused(QueueFault::Loop);
}

TEST_F(QueueWalk, AvailJumpBreaksOnlyThatDevice) {
  d_->set_avail_idx(0, VirtioTestDriver::kQueueSize + 1);
  d_->notify(0);
  EXPECT_EQ(d_->transport->queue_fault(QueueFault::AvailJump), 1u);
  EXPECT_TRUE(d_->transport->status() & VIRTIO_CONFIG_S_NEEDS_RESET);
  EXPECT_EQ(d_->transport->stats().needs_reset.load(), 1u);
  // The other queue still serves until the driver resets, and after the reset both do.
  d_->submit(1, {{0x202000, 16, true}});
  d_->notify(1);
  EXPECT_EQ(dev_->served.size(), 1u);
  dev_->served.clear();
  ASSERT_TRUE(d_->init((1ull << VIRTIO_RING_F_INDIRECT_DESC), 2) & VIRTIO_CONFIG_S_DRIVER_OK);
  EXPECT_FALSE(d_->transport->status() & VIRTIO_CONFIG_S_NEEDS_RESET);
}

TEST_F(QueueWalk, IndirectRefusedWhenNotNegotiated) {
  ASSERT_TRUE(d_->init(0, 2) & VIRTIO_CONFIG_S_DRIVER_OK);
  d_->write_desc(0, kBad, 0x300000, 16, VRING_DESC_F_INDIRECT, 0);
  d_->publish(0, kBad);
  expect_refused(QueueFault::IndirectNotNegotiated);
}

}  // namespace
}  // namespace evmm::virtio
