// What virtio-blk promises about time: a flush reaches the host only after every earlier write
// completed, and a device reset drops the completions of requests still in flight.
#include "devices/virtio/blk/blk.h"

#include <gtest/gtest.h>

#include "testing/virtio_blk_harness.h"

namespace evmm::virtio {
namespace {

using blk_test::BlkDriver;
using blk_test::kData;
using blk_test::kUnset;
using blk_test::ManualEngine;
using blk_test::TempImage;
using Kind = IoOp::Kind;

class BlkOrder : public ::testing::Test {
 protected:
  void SetUp() override { make(); }
  void make(uint64_t features = (1ull << VIRTIO_BLK_F_FLUSH) | (1ull << VIRTIO_BLK_F_DISCARD) |
                                (1ull << VIRTIO_BLK_F_WRITE_ZEROES)) {
    BlkConfig cfg;
    cfg.path = image.path();
    auto dev = BlkDevice::create(cfg, [this](int) -> Result<std::unique_ptr<IoEngine>> {
      auto e = std::make_unique<ManualEngine>();
      engine = e.get();
      return std::unique_ptr<IoEngine>(std::move(e));
    });
    ASSERT_TRUE(dev) << dev.error().message();
    d = std::make_unique<BlkDriver>(*dev);
    ASSERT_TRUE(d->init(features) & VIRTIO_CONFIG_S_DRIVER_OK);
  }
  void run() {
    d->d.notify(0);
    d->d.run();
  }

  TempImage image{64 << 10};
  ManualEngine* engine = nullptr;
  std::unique_ptr<BlkDriver> d;
};

TEST_F(BlkOrder, FlushWaitsForEveryEarlierWrite) {
  d->submit(VIRTIO_BLK_T_OUT, 0, {{kData, 512, false}});
  virtio_blk_discard_write_zeroes r{8, 8, 0};
  ASSERT_TRUE(d->d.mem.write_obj(GuestAddress(kData + 0x1000), r));
  d->submit(VIRTIO_BLK_T_WRITE_ZEROES, 0, {{kData + 0x1000, 16, false}});
  d->submit(VIRTIO_BLK_T_FLUSH, 0, {});
  run();
  EXPECT_EQ(engine->held(Kind::Sync), 0u);  // two writes still in flight
  EXPECT_EQ(d->metrics().flushes_waited.load(), 1u);
  engine->complete(Kind::Write);
  d->d.run();
  EXPECT_EQ(engine->held(Kind::Sync), 0u);  // the write-zeroes is not done yet
  EXPECT_EQ(d->status(2), kUnset);
  engine->complete(Kind::ZeroRange);
  d->d.run();
  ASSERT_EQ(engine->held(Kind::Sync), 1u);  // now the fdatasync goes out
  EXPECT_EQ(d->status(2), kUnset);          // and the flush waits for it
  engine->complete(Kind::Sync);
  d->d.run();
  EXPECT_EQ(d->status(2), VIRTIO_BLK_S_OK);
}

TEST_F(BlkOrder, FlushDoesNotWaitForLaterWrites) {
  d->submit(VIRTIO_BLK_T_FLUSH, 0, {});
  run();
  ASSERT_EQ(engine->held(Kind::Sync), 1u);
  d->submit(VIRTIO_BLK_T_OUT, 0, {{kData, 512, false}});
  run();
  engine->complete(Kind::Sync);
  d->d.run();
  EXPECT_EQ(d->status(0), VIRTIO_BLK_S_OK);
  EXPECT_EQ(d->metrics().flushes_waited.load(), 0u);
}

TEST_F(BlkOrder, AFailedSyncFailsTheFlush) {
  d->submit(VIRTIO_BLK_T_FLUSH, 0, {});
  run();
  engine->complete(Kind::Sync, -EIO);
  d->d.run();
  EXPECT_EQ(d->status(0), VIRTIO_BLK_S_IOERR);
  EXPECT_EQ(d->metrics().host_errors.load(), 1u);
}

TEST_F(BlkOrder, WithoutFlushNegotiatedWritesAreStable) {
  make(0);
  d->submit(VIRTIO_BLK_T_OUT, 0, {{kData, 512, false}});
  run();
  ASSERT_EQ(engine->ops.size(), 1u);
  EXPECT_TRUE(engine->ops[0].dsync);  // §5.2.6.2 case 1: RWF_DSYNC
}

TEST_F(BlkOrder, ResetDropsInFlightCompletions) {
  d->submit(VIRTIO_BLK_T_IN, 0, {{kData, 512, true}});
  d->submit(VIRTIO_BLK_T_FLUSH, 0, {});
  run();
  ASSERT_EQ(engine->ops.size(), 2u);
  d->d.set_reg(VIRTIO_MMIO_STATUS, 0);  // the driver resets the device
  const uint16_t used_before = d->d.used_idx(0);
  engine->complete(Kind::Read);
  engine->complete(Kind::Sync);
  d->d.run();
  EXPECT_EQ(d->metrics().dropped_completions.load(), 2u);
  EXPECT_EQ(d->d.used_idx(0), used_before);  // nothing was added to the old used ring
  EXPECT_EQ(d->status(0), kUnset);
  // The device serves again after a new initialisation, and old tags cannot complete new requests.
  ASSERT_TRUE(d->init() & VIRTIO_CONFIG_S_DRIVER_OK);
}

}  // namespace
}  // namespace evmm::virtio
