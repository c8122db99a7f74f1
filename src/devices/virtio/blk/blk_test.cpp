// virtio-blk driven as a guest would (testing/virtio_driver.h) on real image files, with each engine:
// every request type, the read-only disk, host errors, and opening refusals.
#include "devices/virtio/blk/blk.h"

#include <signal.h>
#include <sys/mount.h>
#include <sys/resource.h>

#include <gtest/gtest.h>

#include "testing/virtio_blk_harness.h"

namespace evmm::virtio {
namespace {

using blk_test::BlkDriver;
using blk_test::kData;
using blk_test::TempImage;
using testing::Buf;

constexpr uint64_t kImageBytes = 1 << 20;

class BlkEngines : public ::testing::TestWithParam<BlkEngineKind> {
 protected:
  std::unique_ptr<BlkDriver> open(const TempImage& image, bool readonly = false) {
    BlkConfig cfg;
    cfg.path = image.path();
    cfg.readonly = readonly;
    cfg.engine = GetParam();
    cfg.serial = "evmm-serial-0123";
    auto dev = BlkDevice::create(cfg);
    EXPECT_TRUE(dev) << dev.error().message();
    if (!dev) return nullptr;
    EXPECT_EQ((*dev)->engine_kind(), GetParam());
    auto d = std::make_unique<BlkDriver>(*dev);
    EXPECT_TRUE(d->init() & VIRTIO_CONFIG_S_DRIVER_OK);
    return d;
  }
};

TEST_P(BlkEngines, ReadsFillGuestBuffersFromTheImage) {
  TempImage image(kImageBytes);
  auto d = open(image);
  ASSERT_TRUE(d);
  EXPECT_EQ(d->request(VIRTIO_BLK_T_IN, 3, {{kData, 512, true}, {kData + 0x10000, 1024, true}}), VIRTIO_BLK_S_OK);
  auto a = d->guest(kData, 512), b = d->guest(kData + 0x10000, 1024);
  for (size_t i = 0; i < 512; ++i) ASSERT_EQ(a[i], TempImage::pattern(3 * 512 + i)) << i;
  for (size_t i = 0; i < 1024; ++i) ASSERT_EQ(b[i], TempImage::pattern(4 * 512 + i)) << i;
  EXPECT_EQ(d->metrics().read_bytes.load(), 1536u);
}

TEST_P(BlkEngines, UsedLengthCountsDataAndStatus) {
  TempImage image(kImageBytes);
  auto d = open(image);
  ASSERT_TRUE(d);
  d->submit(VIRTIO_BLK_T_IN, 0, {{kData, 2048, true}});
  d->run_until_used(1);
  auto used = d->d.next_used(0);
  ASSERT_TRUE(used);
  EXPECT_EQ(used->len, 2049u);
}

TEST_P(BlkEngines, WritesReachTheImageAndAFlushCompletes) {
  TempImage image(kImageBytes);
  auto d = open(image);
  ASSERT_TRUE(d);
  std::vector<uint8_t> data(4096, 0x5a);
  ASSERT_TRUE(d->d.mem.write(GuestAddress(kData), data));
  EXPECT_EQ(d->request(VIRTIO_BLK_T_OUT, 8, {{kData, 4096, false}}), VIRTIO_BLK_S_OK);
  EXPECT_EQ(d->request(VIRTIO_BLK_T_FLUSH, 0, {}), VIRTIO_BLK_S_OK);
  EXPECT_EQ(image.read(8 * 512, 4096), data);
  EXPECT_EQ(image.read(8 * 512 - 1, 1)[0], TempImage::pattern(8 * 512 - 1));  // neighbours untouched
  EXPECT_EQ(d->metrics().writes.load(), 1u);
  EXPECT_EQ(d->metrics().flushes.load(), 1u);
}

TEST_P(BlkEngines, GetIdAnswersTheSerialNulPadded) {
  TempImage image(kImageBytes);
  auto d = open(image);
  ASSERT_TRUE(d);
  ASSERT_TRUE(d->d.mem.fill(GuestAddress(kData), 0xff, 20));
  EXPECT_EQ(d->request(VIRTIO_BLK_T_GET_ID, 0, {{kData, 20, true}}), VIRTIO_BLK_S_OK);
  auto id = d->guest(kData, 20);
  EXPECT_EQ(std::string(id.begin(), id.begin() + 16), "evmm-serial-0123");
  EXPECT_EQ(std::vector<uint8_t>(id.begin() + 16, id.end()), std::vector<uint8_t>(4, 0));
}

TEST_P(BlkEngines, WriteZeroesAndDiscardLeaveZeros) {
  TempImage image(kImageBytes);
  auto d = open(image);
  ASSERT_TRUE(d);
  // Write-zeroes without and with UNMAP, then a discard of two ranges.
  std::vector<virtio_blk_discard_write_zeroes> ranges{{16, 8, 0}, {64, 16, VIRTIO_BLK_WRITE_ZEROES_FLAG_UNMAP}};
  ASSERT_TRUE(d->d.mem.write_obj(GuestAddress(kData), ranges[0]));
  EXPECT_EQ(d->request(VIRTIO_BLK_T_WRITE_ZEROES, 0, {{kData, 16, false}}), VIRTIO_BLK_S_OK);
  ASSERT_TRUE(d->d.mem.write_obj(GuestAddress(kData), ranges[1]));
  EXPECT_EQ(d->request(VIRTIO_BLK_T_WRITE_ZEROES, 0, {{kData, 16, false}}), VIRTIO_BLK_S_OK);
  EXPECT_EQ(image.read(16 * 512, 8 * 512), std::vector<uint8_t>(8 * 512, 0));
  EXPECT_EQ(image.read(64 * 512, 16 * 512), std::vector<uint8_t>(16 * 512, 0));
  EXPECT_EQ(image.read(24 * 512, 1)[0], TempImage::pattern(24 * 512));
  std::vector<virtio_blk_discard_write_zeroes> discard{{128, 8, 0}, {256, 8, 0}};
  ASSERT_TRUE(d->d.mem.write(GuestAddress(kData), std::span(reinterpret_cast<const uint8_t*>(discard.data()), 32)));
  EXPECT_EQ(d->request(VIRTIO_BLK_T_DISCARD, 0, {{kData, 32, false}}), VIRTIO_BLK_S_OK);
  // A discard leaves the content undefined (§5.2.6.1); evmm punches a hole, which reads as zeros.
  EXPECT_EQ(image.read(256 * 512, 8 * 512), std::vector<uint8_t>(8 * 512, 0));
  EXPECT_EQ(d->metrics().discards.load(), 1u);
  EXPECT_EQ(d->metrics().write_zeroes.load(), 2u);
}

TEST_P(BlkEngines, ReadOnlyDiskOffersRoAndRefusesEveryWrite) {
  TempImage image(kImageBytes);
  auto d = open(image, true);
  ASSERT_TRUE(d);
  const uint64_t f = d->device->features();
  EXPECT_TRUE(f & (1ull << VIRTIO_BLK_F_RO));
  EXPECT_FALSE(f & (1ull << VIRTIO_BLK_F_DISCARD));
  EXPECT_FALSE(f & (1ull << VIRTIO_BLK_F_WRITE_ZEROES));
  ASSERT_TRUE(d->d.mem.fill(GuestAddress(kData), 0, 512));
  EXPECT_EQ(d->request(VIRTIO_BLK_T_OUT, 0, {{kData, 512, false}}), VIRTIO_BLK_S_IOERR);
  virtio_blk_discard_write_zeroes r{0, 8, 0};
  ASSERT_TRUE(d->d.mem.write_obj(GuestAddress(kData), r));
  EXPECT_EQ(d->request(VIRTIO_BLK_T_WRITE_ZEROES, 0, {{kData, 16, false}}), VIRTIO_BLK_S_IOERR);
  EXPECT_EQ(d->request(VIRTIO_BLK_T_DISCARD, 0, {{kData, 16, false}}), VIRTIO_BLK_S_IOERR);
  EXPECT_EQ(d->metrics().fault(BlkFault::ReadOnly), 3u);
  EXPECT_EQ(image.read(0, 1)[0], TempImage::pattern(0));
  // Reads and flushes still work.
  EXPECT_EQ(d->request(VIRTIO_BLK_T_IN, 1, {{kData, 512, true}}), VIRTIO_BLK_S_OK);
  EXPECT_EQ(d->request(VIRTIO_BLK_T_FLUSH, 0, {}), VIRTIO_BLK_S_OK);
}

TEST_P(BlkEngines, ReadPastAShrunkImageIsAnIoError) {
  TempImage image(kImageBytes);
  auto d = open(image);
  ASSERT_TRUE(d);
  ASSERT_EQ(::truncate(image.path().c_str(), 4096), 0);  // the image shrinks under the disk
  EXPECT_EQ(d->request(VIRTIO_BLK_T_IN, 100, {{kData, 512, true}}), VIRTIO_BLK_S_IOERR);
  EXPECT_EQ(d->metrics().host_errors.load(), 1u);
}

// A host whose writes fail: past RLIMIT_FSIZE a write gets EFBIG (and SIGXFSZ, ignored here). The limit
// is the process's, so the io_uring workers and the pool's threads meet it too.
TEST_P(BlkEngines, HostWriteErrorsReachTheGuestAsIoErr) {
  TempImage image(kImageBytes);
  auto d = open(image);
  ASSERT_TRUE(d);
  rlimit old;
  ASSERT_EQ(::getrlimit(RLIMIT_FSIZE, &old), 0);
  auto old_handler = ::signal(SIGXFSZ, SIG_IGN);
  rlimit lim{64 << 10, old.rlim_max};
  ASSERT_EQ(::setrlimit(RLIMIT_FSIZE, &lim), 0);
  ASSERT_TRUE(d->d.mem.fill(GuestAddress(kData), 0x11, 4096));
  const uint8_t beyond = d->request(VIRTIO_BLK_T_OUT, 512, {{kData, 4096, false}});
  const uint8_t within = d->request(VIRTIO_BLK_T_OUT, 0, {{kData, 4096, false}});
  ::setrlimit(RLIMIT_FSIZE, &old);
  ::signal(SIGXFSZ, old_handler);
  EXPECT_EQ(beyond, VIRTIO_BLK_S_IOERR);
  EXPECT_EQ(within, VIRTIO_BLK_S_OK);
  EXPECT_EQ(d->metrics().host_errors.load(), 1u);
  EXPECT_EQ(image.read(512 * 512, 1)[0], TempImage::pattern(512 * 512));
}

// A full filesystem: a tmpfs of 64 KiB mounted by the test (root only) under a 1 MiB sparse image.
TEST_P(BlkEngines, FullFilesystemWritesAreIoErr) {
  char dir[] = "/tmp/evmm-blk-full-XXXXXX";
  ASSERT_TRUE(::mkdtemp(dir));
  if (::mount("tmpfs", dir, "tmpfs", 0, "size=64k") != 0) {
    ::rmdir(dir);
    GTEST_SKIP() << "cannot mount a tmpfs here (" << std::strerror(errno) << ")";
  }
  {
    std::string path = std::string(dir) + "/disk.img";
    int fd = ::open(path.c_str(), O_CREAT | O_RDWR | O_CLOEXEC, 0600);
    ASSERT_GE(fd, 0);
    ASSERT_EQ(::ftruncate(fd, kImageBytes), 0);  // sparse: its blocks come with the writes
    ::close(fd);
    BlkConfig cfg;
    cfg.path = path;
    cfg.engine = GetParam();
    auto dev = BlkDevice::create(cfg);
    ASSERT_TRUE(dev) << dev.error().message();
    BlkDriver d(*dev);
    ASSERT_TRUE(d.init() & VIRTIO_CONFIG_S_DRIVER_OK);
    ASSERT_TRUE(d.d.mem.fill(GuestAddress(kData), 0x22, 256 << 10));
    EXPECT_EQ(d.request(VIRTIO_BLK_T_OUT, 0, {{kData, 256 << 10, false}}), VIRTIO_BLK_S_IOERR);
    EXPECT_EQ(d.metrics().host_errors.load(), 1u);
  }
  ::umount2(dir, MNT_DETACH);
  ::rmdir(dir);
}

INSTANTIATE_TEST_SUITE_P(Engines, BlkEngines, ::testing::Values(BlkEngineKind::IoUring, BlkEngineKind::Threads),
                         [](const auto& info) { return std::string(info.param == BlkEngineKind::IoUring ? "IoUring" : "Threads"); });

TEST(VirtioBlk, AutoPicksIoUringWhereTheKernelAllowsIt) {
  TempImage image(4096);
  BlkConfig cfg;
  cfg.path = image.path();
  auto dev = BlkDevice::create(cfg);
  ASSERT_TRUE(dev) << dev.error().message();
  // On these hosts io_uring works (kernel.io_uring_disabled is 0); a host that refuses it gets threads.
  if (!make_uring_engine(-1, {})) GTEST_SKIP() << "io_uring refused here";
  EXPECT_EQ((*dev)->engine_kind(), BlkEngineKind::IoUring);
}

TEST(VirtioBlk, ConfigSpaceAndFeatures) {
  TempImage image(kImageBytes + 100);  // a partial last sector is not part of the disk
  BlkConfig cfg;
  cfg.path = image.path();
  auto dev = BlkDevice::create(cfg);
  ASSERT_TRUE(dev);
  virtio_blk_config c{};
  (*dev)->read_config(0, std::span(reinterpret_cast<uint8_t*>(&c), sizeof c));
  EXPECT_EQ(c.capacity, kImageBytes / 512);
  EXPECT_EQ(c.blk_size, 512u);
  EXPECT_EQ(c.seg_max, 254u);
  EXPECT_EQ(c.max_discard_seg, 16u);
  EXPECT_EQ(c.write_zeroes_may_unmap, 1);
  uint8_t past[4] = {1, 1, 1, 1};
  (*dev)->read_config(sizeof c, past);  // beyond the struct: left as the transport zeroed it
  EXPECT_EQ(past[0], 1);
  const uint64_t f = (*dev)->features();
  for (unsigned b : std::vector<unsigned>{VIRTIO_BLK_F_SEG_MAX, VIRTIO_BLK_F_BLK_SIZE, VIRTIO_BLK_F_FLUSH,
                                          VIRTIO_BLK_F_DISCARD, VIRTIO_BLK_F_WRITE_ZEROES, VIRTIO_RING_F_EVENT_IDX,
                                          VIRTIO_RING_F_INDIRECT_DESC})
    EXPECT_TRUE(f & (1ull << b)) << b;
  EXPECT_FALSE(f & (1ull << VIRTIO_BLK_F_RO));
}

TEST(VirtioBlk, OpeningRefusals) {
  BlkConfig cfg;
  cfg.path = "/nonexistent/disk.img";
  auto missing = BlkDevice::create(cfg);
  ASSERT_FALSE(missing);
  EXPECT_NE(missing.error().message().find("/nonexistent/disk.img"), std::string::npos);
  TempImage image(4096);
  ASSERT_EQ(::chmod(image.path().c_str(), 0444), 0);
  cfg.path = image.path();
  auto rw = BlkDevice::create(cfg);
  ASSERT_FALSE(rw);
  EXPECT_NE(rw.error().message().find("readonly"), std::string::npos) << rw.error().message();
  cfg.readonly = true;
  EXPECT_TRUE(BlkDevice::create(cfg));
  cfg.path = "/tmp";
  EXPECT_FALSE(BlkDevice::create(cfg));  // a directory
}

}  // namespace
}  // namespace evmm::virtio
