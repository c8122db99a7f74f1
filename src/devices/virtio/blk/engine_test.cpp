// The I/O engines alone, on real files: transfers longer than one system call can carry (more than
// IOV_MAX buffers), end of file, and write-zeroes where the filesystem lacks ZERO_RANGE (tmpfs).
#include "devices/virtio/blk/engine.h"

#include <limits.h>
#include <poll.h>
#include <sys/stat.h>

#include <gtest/gtest.h>

#include <thread>

#include "sandbox/seccomp.h"
#include "testing/virtio_blk_harness.h"

namespace evmm::virtio {
namespace {

using blk_test::TempImage;

class Engines : public ::testing::TestWithParam<BlkEngineKind> {
 protected:
  std::unique_ptr<IoEngine> make(const TempImage& image) {
    fd_ = ::open(image.path().c_str(), O_RDWR | O_CLOEXEC);
    EXPECT_GE(fd_, 0);
    auto e = IoEngine::create(GetParam(), fd_, {});
    EXPECT_TRUE(e) << e.error().message();
    return e ? std::move(*e) : nullptr;
  }
  void TearDown() override {
    if (fd_ >= 0) ::close(fd_);
  }
  // Submits op and waits (on the event fd, as the device loop does) for its completion.
  int run(IoEngine& e, IoOp op) {
    op.tag = 42;
    e.submit(std::move(op));
    e.kick();
    std::vector<IoCompletion> done;
    for (int i = 0; i < 500 && done.empty(); ++i) {
      pollfd p{e.event_fd(), POLLIN, 0};
      ::poll(&p, 1, 10);
      e.reap(done);
    }
    EXPECT_EQ(done.size(), 1u);
    EXPECT_EQ(e.in_flight(), 0u);
    return done.empty() ? -ETIMEDOUT : done[0].result;
  }
  int fd_ = -1;
};

TEST_P(Engines, ReadOfMoreThanIovMaxBuffersIsContinued) {
  constexpr size_t kBufs = IOV_MAX + 300;
  TempImage image(kBufs * 512);
  auto e = make(image);
  ASSERT_TRUE(e);
  std::vector<uint8_t> buf(kBufs * 512, 0);
  IoOp op{IoOp::Kind::Read, 0, buf.size(), {}, false, 0};
  for (size_t i = 0; i < kBufs; ++i) op.iov.push_back({buf.data() + i * 512, 512});
  EXPECT_EQ(run(*e, std::move(op)), 0);
  for (size_t i = 0; i < buf.size(); i += 4099) ASSERT_EQ(buf[i], TempImage::pattern(i)) << i;
  EXPECT_EQ(buf.back(), TempImage::pattern(buf.size() - 1));
}

TEST_P(Engines, ReadPastTheEndIsAnIoError) {
  TempImage image(4096);
  auto e = make(image);
  ASSERT_TRUE(e);
  std::vector<uint8_t> buf(8192);
  EXPECT_EQ(run(*e, IoOp{IoOp::Kind::Read, 0, buf.size(), std::vector<iovec>{iovec{buf.data(), buf.size()}}, false, 0}), -EIO);
}

TEST_P(Engines, WriteZeroesOnTmpfsPunchesThenAllocates) {
  TempImage image(1 << 20, "/dev/shm");  // tmpfs: no FALLOC_FL_ZERO_RANGE
  auto e = make(image);
  ASSERT_TRUE(e);
  EXPECT_EQ(run(*e, IoOp{IoOp::Kind::ZeroRange, 65536, 65536, {}, false, 0}), 0);
  EXPECT_EQ(image.read(65536, 65536), std::vector<uint8_t>(65536, 0));
  EXPECT_EQ(image.read(65535, 1)[0], TempImage::pattern(65535));
  struct stat st;
  ASSERT_EQ(::fstat(fd_, &st), 0);
  EXPECT_EQ(uint64_t(st.st_blocks) * 512, uint64_t(1 << 20));  // allocated again, not left a hole
  EXPECT_EQ(run(*e, IoOp{IoOp::Kind::PunchHole, 0, 65536, {}, false, 0}), 0);
  ASSERT_EQ(::fstat(fd_, &st), 0);
  EXPECT_EQ(uint64_t(st.st_blocks) * 512, uint64_t((1 << 20) - 65536));
  EXPECT_EQ(run(*e, IoOp{IoOp::Kind::Sync, 0, 0, {}, false, 0}), 0);
}

TEST_P(Engines, WritesWithDsyncLand) {
  TempImage image(8192);
  auto e = make(image);
  ASSERT_TRUE(e);
  std::vector<uint8_t> buf(4096, 0x77);
  EXPECT_EQ(run(*e, IoOp{IoOp::Kind::Write, 4096, 4096, std::vector<iovec>{iovec{buf.data(), buf.size()}}, true, 0}), 0);
  EXPECT_EQ(image.read(4096, 4096), buf);
}

// The device event loop's filter (and, for the pool, its workers' own) lets every operation through:
// a call it forbade would kill the test with SIGSYS.
TEST_P(Engines, EveryOperationRunsUnderTheDeviceFilter) {
  if (!seccomp::supported()) GTEST_SKIP() << "seccomp filters are off in sanitizer builds";
  TempImage image(1 << 20, "/dev/shm");
  fd_ = ::open(image.path().c_str(), O_RDWR | O_CLOEXEC);
  ASSERT_GE(fd_, 0);
  auto e = IoEngine::create(GetParam(), fd_, EngineOptions{.sandbox = true});
  ASSERT_TRUE(e) << e.error().message();
  std::vector<int> results;
  std::thread loop([&] {
    // The loop thread as platform_devices.cpp starts it: the device filter, then only device work.
    if (!seccomp::install(seccomp::Role::Device)) return;
    std::vector<uint8_t> buf(4096, 0x33);
    results.push_back(run(**e, IoOp{IoOp::Kind::Write, 0, 4096, std::vector<iovec>{iovec{buf.data(), 4096}}, false, 0}));
    results.push_back(run(**e, IoOp{IoOp::Kind::Write, 4096, 4096, std::vector<iovec>{iovec{buf.data(), 4096}}, true, 0}));
    results.push_back(run(**e, IoOp{IoOp::Kind::Read, 0, 4096, std::vector<iovec>{iovec{buf.data(), 4096}}, false, 0}));
    results.push_back(run(**e, IoOp{IoOp::Kind::Sync, 0, 0, {}, false, 0}));
    results.push_back(run(**e, IoOp{IoOp::Kind::PunchHole, 8192, 4096, {}, false, 0}));
    results.push_back(run(**e, IoOp{IoOp::Kind::ZeroRange, 16384, 4096, {}, false, 0}));
  });
  loop.join();
  EXPECT_EQ(results, std::vector<int>(6, 0));
}

INSTANTIATE_TEST_SUITE_P(Kinds, Engines, ::testing::Values(BlkEngineKind::IoUring, BlkEngineKind::Threads),
                         [](const auto& info) { return std::string(info.param == BlkEngineKind::IoUring ? "IoUring" : "Threads"); });

TEST(EngineAdvance, DropsWholeAndPartialBuffers) {
  uint8_t a[10], b[20];
  std::vector<iovec> iov{{a, 10}, {b, 20}};
  advance_iov(iov, 15);
  ASSERT_EQ(iov.size(), 1u);
  EXPECT_EQ(iov[0].iov_base, static_cast<void*>(b + 5));
  EXPECT_EQ(iov[0].iov_len, 15u);
  advance_iov(iov, 15);
  EXPECT_TRUE(iov.empty());
}

}  // namespace
}  // namespace evmm::virtio
