// The shared page log (vhost's dirty-log layout): marks from a second mapping of the same memfd are
// taken once by its creator, in the byte layout a vhost backend in another process writes.
#include "memory/page_log.h"

#include <gtest/gtest.h>
#include <sys/mman.h>
#include <unistd.h>

#include <thread>

namespace evmm {
namespace {

TEST(PageLog, MarksThroughASecondMappingAreTakenOnce) {
  auto log = PageLog::create(64 << 20);  // 16384 pages: 2 KiB of bits
  ASSERT_TRUE(log) << log.error().message();
  EXPECT_EQ(log->size(), 2048u);
  EXPECT_EQ(log->limit(), 64u << 20);
  auto peer = PageLog::map(log->fd(), log->size(), 0);
  ASSERT_TRUE(peer) << peer.error().message();

  EXPECT_TRUE(peer->mark(GuestAddress(0x3000), 1));
  EXPECT_TRUE(peer->mark(GuestAddress(0x10fff), 2));        // crosses into the next page
  EXPECT_TRUE(peer->mark(GuestAddress(0x200000), 0x2000));  // two whole pages
  EXPECT_TRUE(peer->mark(GuestAddress(0x200000), 0));       // nothing
  EXPECT_EQ(set_pages(log->take()), (std::vector<uint64_t>{3, 0x10, 0x11, 0x200, 0x201}));
  EXPECT_TRUE(set_pages(log->take()).empty());
  // vhost's byte layout: page p is bit p % 8 of byte p / 8.
  EXPECT_TRUE(peer->mark(GuestAddress(9 * PageLog::kPage), 1));
  void* raw = ::mmap(nullptr, log->size(), PROT_READ, MAP_SHARED, log->fd(), 0);
  ASSERT_NE(raw, MAP_FAILED);
  EXPECT_EQ(static_cast<const uint8_t*>(raw)[1], 1u << 1);
  ::munmap(raw, log->size());
  EXPECT_EQ(set_pages(log->take()), std::vector<uint64_t>{9});
}

TEST(PageLog, MarksPastTheEndAreRefusedAndCounted) {
  auto log = PageLog::create(1 << 20);  // 256 pages
  ASSERT_TRUE(log);
  auto peer = PageLog::map(log->fd(), 16, 8);  // the second half: pages 64 to 127 of the peer's view
  ASSERT_TRUE(peer) << peer.error().message();
  EXPECT_TRUE(peer->mark(GuestAddress(0), 1));
  EXPECT_FALSE(peer->mark(GuestAddress(127 * PageLog::kPage), 2 * PageLog::kPage));  // 127 in, 128 out
  EXPECT_FALSE(peer->mark(GuestAddress(~0ull - 10), 100));                         // wraps
  EXPECT_EQ(peer->refused(), 2u);
  // The peer's byte 0 is the creator's byte 8: page 64; its page 127 is the creator's 191.
  EXPECT_EQ(set_pages(log->take()), (std::vector<uint64_t>{64, 191}));
}

TEST(PageLog, BadMappingsHaveDistinctErrors) {
  auto log = PageLog::create(1 << 20);
  ASSERT_TRUE(log);
  EXPECT_EQ(PageLog::create(0).error().code(), EINVAL);
  EXPECT_EQ(PageLog::map(log->fd(), 0, 0).error().code(), EINVAL);
  EXPECT_EQ(PageLog::map(log->fd(), 16, ~0ull - 4).error().code(), EINVAL);
  EXPECT_EQ(PageLog::map(log->fd(), PageLog::kMaxBytes + 1, 0).error().code(), ENOMEM);
  EXPECT_EQ(PageLog::map(log->fd(), log->size() + 1, 0).error().code(), ERANGE);
  int pipe_fds[2];
  ASSERT_EQ(::pipe(pipe_fds), 0);
  EXPECT_EQ(PageLog::map(pipe_fds[0], 8, 0).error().code(), ENODEV);
  ::close(pipe_fds[0]);
  ::close(pipe_fds[1]);
  EXPECT_EQ(PageLog::map(-1, 8, 0).error().code(), EBADF);
}

// A marker and a taker at once, the marker's byte ORs racing the taker's word exchanges on the same
// words: every page marked (each once) is taken exactly once.
TEST(PageLogConcurrent, EveryMarkIsTakenExactlyOnce) {
  constexpr uint64_t kPages = 1 << 16;
  auto log = PageLog::create(kPages * PageLog::kPage);
  ASSERT_TRUE(log);
  auto peer = PageLog::map(log->fd(), log->size(), 0);
  ASSERT_TRUE(peer);
  std::atomic<bool> done{false};
  std::vector<uint32_t> taken(kPages, 0);
  std::thread taker([&] {
    for (bool last = false; !last;) {
      last = done.load(std::memory_order_acquire);
      for (uint64_t p : set_pages(log->take())) ++taken[p];
    }
  });
  // Neighbouring pages of one word in turn, strided so that every word is hit many times.
  for (uint64_t i = 0; i < kPages; ++i) ASSERT_TRUE(peer->mark(GuestAddress((i * 4099 % kPages) * PageLog::kPage), 1));
  done.store(true, std::memory_order_release);
  taker.join();
  for (uint64_t p = 0; p < kPages; ++p) ASSERT_EQ(taken[p], 1u) << "page " << p;
}

}  // namespace
}  // namespace evmm
