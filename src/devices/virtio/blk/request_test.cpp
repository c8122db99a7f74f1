// Every guest mistake virtio-blk refuses (§5.2.6): the status it answers, the counter it bumps, and
// that nothing reaches the engine. Driven through the device with an engine that holds everything.
#include "devices/virtio/blk/request.h"

#include <gtest/gtest.h>

#include "testing/virtio_blk_harness.h"

namespace evmm::virtio {
namespace {

using blk_test::BlkDriver;
using blk_test::kData;
using blk_test::kHeaders;
using blk_test::kStatus;
using blk_test::kUnset;
using blk_test::ManualEngine;
using blk_test::TempImage;

class BlkRefusals : public ::testing::Test {
 protected:
  void SetUp() override { make({}); }
  void make(BlkConfig cfg, uint64_t features = (1ull << VIRTIO_BLK_F_FLUSH) | (1ull << VIRTIO_BLK_F_DISCARD) |
                                                (1ull << VIRTIO_BLK_F_WRITE_ZEROES)) {
    cfg.path = image.path();
    if (!cfg.seg_max) cfg.seg_max = 4;
    cfg.max_discard_seg = 2;
    cfg.max_discard_sectors = 64;
    auto dev = BlkDevice::create(cfg, [this](int) -> Result<std::unique_ptr<IoEngine>> {
      auto e = std::make_unique<ManualEngine>();
      engine = e.get();
      return std::unique_ptr<IoEngine>(std::move(e));
    });
    ASSERT_TRUE(dev) << dev.error().message();
    d = std::make_unique<BlkDriver>(*dev);
    ASSERT_TRUE(d->init(features) & VIRTIO_CONFIG_S_DRIVER_OK);
  }
  // Submits, runs, and expects the answer, the fault counted and no I/O.
  void expect(uint8_t status, BlkFault fault) {
    const uint64_t before = d->metrics().fault(fault);
    d->run_until_used(++answered);
    EXPECT_EQ(d->status(answered - 1), status);
    EXPECT_EQ(d->metrics().fault(fault), before + 1) << to_string(fault);
    EXPECT_TRUE(engine->ops.empty());
  }
  void write_ranges(std::vector<virtio_blk_discard_write_zeroes> r) {
    ASSERT_TRUE(d->d.mem.write(GuestAddress(kData), std::span(reinterpret_cast<const uint8_t*>(r.data()), 16 * r.size())));
  }

  TempImage image{64 << 10};  // 128 sectors
  ManualEngine* engine = nullptr;
  std::unique_ptr<BlkDriver> d;
  uint16_t answered = 0;
};

TEST_F(BlkRefusals, UnknownTypeIsUnsupported) {
  for (uint32_t type : {2u, 5u, 10u, 14u, 0x80000000u}) {
    d->submit(type, 0, {});
    expect(VIRTIO_BLK_S_UNSUPP, BlkFault::Unsupported);
  }
}

TEST_F(BlkRefusals, ShortHeader) {
  ASSERT_TRUE(d->d.mem.write_obj<uint8_t>(GuestAddress(kStatus), kUnset));
  d->submit_raw({{kHeaders, 8, false}, {kStatus, 1, true}});
  expect(VIRTIO_BLK_S_IOERR, BlkFault::ShortHeader);
}

TEST_F(BlkRefusals, HeaderSplitAcrossBuffersIsFine) {
  virtio_blk_outhdr h{VIRTIO_BLK_T_GET_ID, 0, 0};
  ASSERT_TRUE(d->d.mem.write_obj(GuestAddress(kHeaders), h));
  d->submit_raw({{kHeaders, 5, false}, {kHeaders + 5, 11, false}, {kData, 20, true}, {kStatus, 1, true}});
  d->run_until_used(1);
  EXPECT_EQ(d->status(0), VIRTIO_BLK_S_OK);
}

TEST_F(BlkRefusals, NoStatusByteReturnsTheChainEmpty) {
  virtio_blk_outhdr h{VIRTIO_BLK_T_FLUSH, 0, 0};
  ASSERT_TRUE(d->d.mem.write_obj(GuestAddress(kHeaders), h));
  d->submit_raw({{kHeaders, 16, false}});
  d->run_until_used(1);
  auto used = d->d.next_used(0);
  ASSERT_TRUE(used);
  EXPECT_EQ(used->len, 0u);
  EXPECT_EQ(d->metrics().fault(BlkFault::NoStatus), 1u);
  EXPECT_TRUE(engine->ops.empty());
}

TEST_F(BlkRefusals, DataInTheWrongDirection) {
  d->submit(VIRTIO_BLK_T_IN, 0, {{kData, 512, false}});  // a read into a readable buffer
  expect(VIRTIO_BLK_S_IOERR, BlkFault::WrongDirection);
  d->submit(VIRTIO_BLK_T_OUT, 0, {{kData, 512, true}});  // a write from a writable buffer
  expect(VIRTIO_BLK_S_IOERR, BlkFault::WrongDirection);
  d->submit(VIRTIO_BLK_T_GET_ID, 0, {});  // nowhere to put the id
  expect(VIRTIO_BLK_S_IOERR, BlkFault::WrongDirection);
}

TEST_F(BlkRefusals, UnalignedLength) {
  d->submit(VIRTIO_BLK_T_OUT, 0, {{kData, 100, false}});
  expect(VIRTIO_BLK_S_IOERR, BlkFault::Unaligned);
  d->submit(VIRTIO_BLK_T_DISCARD, 0, {{kData, 24, false}});  // not a whole range
  expect(VIRTIO_BLK_S_IOERR, BlkFault::Unaligned);
}

TEST_F(BlkRefusals, SectorsBeyondTheCapacityOrOverflowing) {
  d->submit(VIRTIO_BLK_T_IN, 127, {{kData, 1024, true}});  // the last sector and one past it
  expect(VIRTIO_BLK_S_IOERR, BlkFault::OutOfRange);
  d->submit(VIRTIO_BLK_T_IN, UINT64_MAX, {{kData, 512, true}});
  expect(VIRTIO_BLK_S_IOERR, BlkFault::OutOfRange);
  d->submit(VIRTIO_BLK_T_OUT, UINT64_MAX / 512 + 1, {{kData, 512, false}});  // sector * 512 wraps
  expect(VIRTIO_BLK_S_IOERR, BlkFault::OutOfRange);
  write_ranges({{UINT64_MAX - 1, 8, 0}});
  d->submit(VIRTIO_BLK_T_DISCARD, 0, {{kData, 16, false}});
  expect(VIRTIO_BLK_S_IOERR, BlkFault::OutOfRange);
  // The last sector exactly is fine.
  d->submit(VIRTIO_BLK_T_IN, 127, {{kData, 512, true}});
  d->run_until_used(++answered);
  EXPECT_EQ(engine->held(IoOp::Kind::Read), 1u);
}

TEST_F(BlkRefusals, TooManySegments) {
  d->submit(VIRTIO_BLK_T_IN, 0, {{kData, 512, true}, {kData + 512, 512, true}, {kData + 1024, 512, true},
                                 {kData + 1536, 512, true}, {kData + 2048, 512, true}});  // seg_max is 4
  expect(VIRTIO_BLK_S_IOERR, BlkFault::TooManySegments);
  write_ranges({{0, 8, 0}, {8, 8, 0}, {16, 8, 0}});  // max_discard_seg is 2
  d->submit(VIRTIO_BLK_T_DISCARD, 0, {{kData, 48, false}});
  expect(VIRTIO_BLK_S_IOERR, BlkFault::TooManySegments);
}

TEST_F(BlkRefusals, RangeOverItsLimit) {
  write_ranges({{0, 65, 0}});  // max_discard_sectors is 64
  d->submit(VIRTIO_BLK_T_DISCARD, 0, {{kData, 16, false}});
  expect(VIRTIO_BLK_S_IOERR, BlkFault::TooManySectors);
}

TEST_F(BlkRefusals, UnmapOnDiscardAndUnknownFlagsAreUnsupported) {
  write_ranges({{0, 8, VIRTIO_BLK_WRITE_ZEROES_FLAG_UNMAP}});
  d->submit(VIRTIO_BLK_T_DISCARD, 0, {{kData, 16, false}});
  expect(VIRTIO_BLK_S_UNSUPP, BlkFault::BadSegmentFlags);
  write_ranges({{0, 8, 2}});
  d->submit(VIRTIO_BLK_T_WRITE_ZEROES, 0, {{kData, 16, false}});
  expect(VIRTIO_BLK_S_UNSUPP, BlkFault::BadSegmentFlags);
}

TEST_F(BlkRefusals, DiscardWithoutTheFeatureIsUnsupported) {
  make({}, 1ull << VIRTIO_BLK_F_FLUSH);
  write_ranges({{0, 8, 0}});
  d->submit(VIRTIO_BLK_T_DISCARD, 0, {{kData, 16, false}});
  expect(VIRTIO_BLK_S_UNSUPP, BlkFault::NotNegotiated);
  d->submit(VIRTIO_BLK_T_WRITE_ZEROES, 0, {{kData, 16, false}});
  expect(VIRTIO_BLK_S_UNSUPP, BlkFault::NotNegotiated);
}

TEST_F(BlkRefusals, GoodRequestsAfterBadOnesAreServed) {
  d->submit(99, 0, {});
  d->submit(VIRTIO_BLK_T_IN, 1000, {{kData, 512, true}});
  d->submit(VIRTIO_BLK_T_IN, 0, {{kData, 512, true}});
  d->run_until_used(2);
  ASSERT_EQ(engine->held(IoOp::Kind::Read), 1u);
  engine->complete(IoOp::Kind::Read);
  d->run_until_used(3);
  EXPECT_EQ(d->status(2), VIRTIO_BLK_S_OK);
  EXPECT_EQ(d->metrics().total_faults(), 2u);
  EXPECT_EQ(d->metrics().requests.load(), 3u);
}

// The parser alone, as the fuzz target drives it: a chain built by hand.
TEST(BlkParser, DataRangesFollowTheChainsBytes) {
  auto mem = *GuestMemory::create({{GuestAddress(0), 1 << 20}});
  virtio_blk_outhdr h{VIRTIO_BLK_T_OUT, 0, 2};
  ASSERT_TRUE(mem.write_obj(GuestAddress(0x1000), h));
  // Header and the first 512 data bytes share a buffer; the status shares one with nothing.
  DescriptorChain c;
  c.descs = {{GuestAddress(0x1000), 16 + 512, false}, {GuestAddress(0x4000), 512, false}, {GuestAddress(0x8000), 1, true}};
  c.readable = 2;
  c.readable_bytes = 16 + 1024;
  c.writable_bytes = 1;
  BlkLimits limits{.capacity = 16, .seg_max = 4};
  BlkRequest r;
  parse_request(c, mem, limits, r);
  ASSERT_FALSE(r.fault) << to_string(*r.fault);
  EXPECT_EQ(r.op, BlkOp::Out);
  EXPECT_EQ(r.sector, 2u);
  EXPECT_EQ(r.data_len, 1024u);
  ASSERT_EQ(r.data.size(), 2u);
  EXPECT_EQ(r.data[0].addr, GuestAddress(0x1010));
  EXPECT_EQ(r.data[0].len, 512u);
  EXPECT_EQ(r.data[1].addr, GuestAddress(0x4000));
  EXPECT_EQ(*r.status, GuestAddress(0x8000));
}

}  // namespace
}  // namespace evmm::virtio
