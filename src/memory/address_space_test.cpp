// AddressSpace in one process: regions from memfds, checked accesses across regions, the thread
// cache, distinct errors, pinned views, and removal under threads that keep accessing. No KVM.
#include "memory/address_space.h"

#include <fcntl.h>
#include <sys/mman.h>
#include <sys/socket.h>
#include <unistd.h>

#include <gtest/gtest.h>

#include <array>
#include <thread>
#include <vector>

namespace evmm {
namespace {

constexpr uint64_t kPage = 4096;

UniqueFd memfd(uint64_t bytes) {
  UniqueFd fd(::memfd_create("as-test", MFD_CLOEXEC));
  EXPECT_TRUE(fd.valid());
  EXPECT_EQ(::ftruncate(fd.get(), off_t(bytes)), 0);
  return fd;
}

uint8_t byte_at(int fd, uint64_t off) {
  uint8_t b = 0;
  EXPECT_EQ(::pread(fd, &b, 1, off_t(off)), 1);
  return b;
}

TEST(AddressSpace, AccessesCrossRegionsAndLandAtTheirFdOffsets) {
  UniqueFd fd = memfd(4 * kPage);
  auto as = AddressSpace::create().value();
  // Two regions, adjacent in guest space, the second before the first in the file.
  ASSERT_TRUE(as->add_region(GuestAddress(0x10000), kPage, fd.get(), 2 * kPage));
  ASSERT_TRUE(as->add_region(GuestAddress(0x11000), kPage, fd.get(), 0));
  std::vector<uint8_t> in(64);
  for (size_t i = 0; i < in.size(); ++i) in[i] = uint8_t(i + 1);
  ASSERT_TRUE(as->write(GuestAddress(0x11000 - 32), in));
  EXPECT_EQ(byte_at(fd.get(), 2 * kPage + kPage - 32), 1);
  EXPECT_EQ(byte_at(fd.get(), 0), 33);
  std::vector<uint8_t> out(64);
  ASSERT_TRUE(as->read(GuestAddress(0x11000 - 32), out));
  EXPECT_EQ(out, in);
  ASSERT_TRUE(as->write_obj<uint64_t>(GuestAddress(0x11008), 0x1122334455667788ull));
  EXPECT_EQ(as->read_obj<uint64_t>(GuestAddress(0x11008)).value(), 0x1122334455667788ull);
  EXPECT_EQ(as->load<uint32_t>(GuestAddress(0x1100c), std::memory_order_acquire).value(), 0x11223344u);
  ASSERT_TRUE(as->store<uint16_t>(GuestAddress(0x11010), 0xbeef, std::memory_order_release));
  EXPECT_EQ(as->read_obj<uint16_t>(GuestAddress(0x11010)).value(), 0xbeef);
  EXPECT_EQ(as->load<uint32_t>(GuestAddress(0x11002), std::memory_order_relaxed).error().code(), EINVAL);

  auto t = as->translate(GuestAddress(0x11010)).value();
  EXPECT_EQ(t.region_start, GuestAddress(0x11000));
  EXPECT_EQ(t.offset, 0x10u);
  EXPECT_EQ(t.fd_offset, 0x10u);
  EXPECT_EQ(t.contiguous, kPage - 0x10);
}

TEST(AddressSpace, AnyByteOutsideEveryRegionFailsTheWholeAccessAndTouchesNothing) {
  UniqueFd fd = memfd(kPage);
  auto as = AddressSpace::create().value();
  ASSERT_TRUE(as->add_region(GuestAddress(0x1000), kPage, fd.get(), 0));
  std::vector<uint8_t> in(16, 0xaa);
  auto w = as->write(GuestAddress(0x2000 - 8), in);  // the last 8 bytes fall in the hole
  ASSERT_FALSE(w);
  EXPECT_EQ(w.error().code(), EFAULT);
  EXPECT_EQ(byte_at(fd.get(), kPage - 8), 0);
  EXPECT_EQ(as->read_obj<uint8_t>(GuestAddress(0)).error().code(), EFAULT);
  EXPECT_EQ(as->translate(GuestAddress(0x5000)).error().code(), EFAULT);
  EXPECT_EQ(as->write(GuestAddress(~0ull - 3), in).error().code(), EFAULT);  // wraps
  EXPECT_EQ(as->map(GuestAddress(0x1800), kPage).error().code(), EFAULT);
  EXPECT_EQ(as->stats().faults, 5u);
}

TEST(AddressSpace, AddAndRemoveErrorsAreDistinct) {
  UniqueFd fd = memfd(2 * kPage);
  auto as = AddressSpace::create().value();
  EXPECT_EQ(as->add_region(GuestAddress(0x800), kPage, fd.get(), 0).error().code(), EINVAL);
  EXPECT_EQ(as->add_region(GuestAddress(0x1000), 0, fd.get(), 0).error().code(), EINVAL);
  EXPECT_EQ(as->add_region(GuestAddress(0x1000), kPage, fd.get(), 100).error().code(), EINVAL);
  EXPECT_EQ(as->add_region(GuestAddress(~0ull & ~(kPage - 1)), 2 * kPage, fd.get(), 0).error().code(), EINVAL);
  EXPECT_EQ(as->add_region(GuestAddress(0x1000), kPage, 1000, 0).error().code(), EBADF);
  int p[2];
  ASSERT_EQ(::pipe(p), 0);
  EXPECT_EQ(as->add_region(GuestAddress(0x1000), kPage, p[0], 0).error().code(), ENODEV);
  ::close(p[0]);
  ::close(p[1]);
  EXPECT_EQ(as->add_region(GuestAddress(0x1000), 4 * kPage, fd.get(), 0).error().code(), ERANGE);
  EXPECT_EQ(as->add_region(GuestAddress(0x1000), kPage, fd.get(), 2 * kPage).error().code(), ERANGE);
  ASSERT_TRUE(as->add_region(GuestAddress(0x1000), 2 * kPage, fd.get(), 0));
  EXPECT_EQ(as->add_region(GuestAddress(0x2000), kPage, fd.get(), 0).error().code(), EEXIST);
  EXPECT_EQ(as->add_region(GuestAddress(0), 2 * kPage, fd.get(), 0).error().code(), EEXIST);
  EXPECT_EQ(as->remove_region(GuestAddress(0x2000)).error().code(), ENOENT);
  EXPECT_EQ(as->regions().size(), 1u);
  ASSERT_TRUE(as->remove_region(GuestAddress(0x1000)));
  EXPECT_TRUE(as->regions().empty());
  EXPECT_EQ(as->read_obj<uint8_t>(GuestAddress(0x1000)).error().code(), EFAULT);
}

// A run of accesses to one region is served by the thread's cache; a new snapshot invalidates it.
TEST(AddressSpace, ThreadCacheHitsUntilTheGenerationChanges) {
  UniqueFd fd = memfd(2 * kPage);
  auto as = AddressSpace::create().value();
  ASSERT_TRUE(as->add_region(GuestAddress(0), kPage, fd.get(), 0));
  const uint64_t gen = as->generation();
  for (int i = 0; i < 10; ++i) ASSERT_TRUE(as->read_obj<uint32_t>(GuestAddress(4 * i)));
  auto s = as->stats();
  EXPECT_EQ(s.cache_misses, 1u);
  EXPECT_EQ(s.cache_hits, 9u);
  ASSERT_TRUE(as->add_region(GuestAddress(0x10000), kPage, fd.get(), kPage));
  EXPECT_EQ(as->generation(), gen + 1);
  ASSERT_TRUE(as->read_obj<uint32_t>(GuestAddress(0)));
  EXPECT_EQ(as->stats().cache_misses, 2u);
  // Another thread has its own cache.
  std::thread([&] { ASSERT_TRUE(as->read_obj<uint32_t>(GuestAddress(0))); }).join();
  EXPECT_EQ(as->stats().cache_misses, 3u);
  EXPECT_EQ(as->stats().regions, 2u);
  EXPECT_EQ(as->stats().bytes, 2 * kPage);
}

TEST(AddressSpace, CopyBetweenOverlappingRangesMovesLikeMemmove) {
  UniqueFd fd = memfd(64 * kPage);
  auto as = AddressSpace::create().value();
  // Three regions so that the ranges cross region boundaries.
  ASSERT_TRUE(as->add_region(GuestAddress(0), 16 * kPage, fd.get(), 0));
  ASSERT_TRUE(as->add_region(GuestAddress(16 * kPage), 16 * kPage, fd.get(), 32 * kPage));
  ASSERT_TRUE(as->add_region(GuestAddress(32 * kPage), 16 * kPage, fd.get(), 16 * kPage));
  const uint64_t len = 100000;
  std::vector<uint8_t> pattern(len);
  for (size_t i = 0; i < len; ++i) pattern[i] = uint8_t(i * 7 + i / 251);
  for (uint64_t shift : {uint64_t{1}, uint64_t{4097}, uint64_t{70000}}) {
    ASSERT_TRUE(as->write(GuestAddress(1000), pattern));
    ASSERT_TRUE(as->copy(GuestAddress(1000 + shift), GuestAddress(1000), len));  // forward overlap
    std::vector<uint8_t> got(len);
    ASSERT_TRUE(as->read(GuestAddress(1000 + shift), got));
    EXPECT_EQ(got, pattern) << shift;
    ASSERT_TRUE(as->write(GuestAddress(1000 + shift), pattern));
    ASSERT_TRUE(as->copy(GuestAddress(1000), GuestAddress(1000 + shift), len));  // backward overlap
    ASSERT_TRUE(as->read(GuestAddress(1000), got));
    EXPECT_EQ(got, pattern) << shift;
  }
  EXPECT_EQ(as->copy(GuestAddress(0), GuestAddress(47 * kPage), 2 * kPage).error().code(), EFAULT);
}

// A view keeps its mapping: after the region is removed the view still reads what it saw, while
// accesses through the space fail.
TEST(AddressSpace, PinnedViewOutlivesTheRegionsRemoval) {
  UniqueFd fd = memfd(kPage);
  auto as = AddressSpace::create().value();
  ASSERT_TRUE(as->add_region(GuestAddress(0x4000), kPage, fd.get(), 0));
  ASSERT_TRUE(as->write_obj<uint32_t>(GuestAddress(0x4010), 0xfeedf00d));
  MappedView v = as->map(GuestAddress(0x4010), 16).value();
  EXPECT_EQ(v.address(), GuestAddress(0x4010));
  ASSERT_TRUE(as->remove_region(GuestAddress(0x4000)));
  EXPECT_EQ(v.slice().read_obj<uint32_t>(0).value(), 0xfeedf00du);
  ASSERT_TRUE(v.slice().write_obj<uint32_t>(4, 7));
  EXPECT_EQ(byte_at(fd.get(), 0x14), 7);
  EXPECT_EQ(v.slice().read_obj<uint32_t>(16).error().code(), EFAULT);
  EXPECT_EQ(as->read_obj<uint32_t>(GuestAddress(0x4010)).error().code(), EFAULT);
}

// What a device backend binds to: the whole table pinned as a GuestMemory, valid across removals and
// blind to additions until the holder pins again.
TEST(AddressSpace, APinnedTableOutlivesRemovalsAndSeesOnlyItsSnapshot) {
  UniqueFd a = memfd(2 * kPage), b = memfd(kPage);
  auto as = AddressSpace::create().value();
  EXPECT_TRUE(as->pin().regions().empty());
  ASSERT_TRUE(as->add_region(GuestAddress(0x10000), 2 * kPage, a.get(), 0));
  ASSERT_TRUE(as->add_region(GuestAddress(0x40000), kPage, b.get(), 0));
  GuestMemory mem = as->pin();
  ASSERT_EQ(mem.regions().size(), 2u);
  EXPECT_EQ(mem.memfd(), -1);

  // The same bytes through both, at the regions' fd offsets.
  ASSERT_TRUE(mem.write_obj<uint32_t>(GuestAddress(0x40008), 0xabad1dea));
  EXPECT_EQ(as->read_obj<uint32_t>(GuestAddress(0x40008)).value(), 0xabad1deau);
  EXPECT_EQ(byte_at(b.get(), 8), 0xea);

  // A removal does not wait for the pin, and the pinned mapping stays usable, host iovecs too.
  ASSERT_TRUE(as->remove_region(GuestAddress(0x40000)));
  EXPECT_EQ(as->read_obj<uint32_t>(GuestAddress(0x40008)).error().code(), EFAULT);
  std::vector<struct iovec> iov;
  ASSERT_TRUE(mem.io_vectors(GuestAddress(0x40000), kPage, iov));
  ASSERT_EQ(iov.size(), 1u);
  static_cast<uint8_t*>(iov[0].iov_base)[9] = 0x5a;
  EXPECT_EQ(byte_at(b.get(), 9), 0x5a);

  // A region added later is not in the old pin; a new pin has it and not the removed one.
  UniqueFd c = memfd(kPage);
  ASSERT_TRUE(as->add_region(GuestAddress(0x80000), kPage, c.get(), 0));
  EXPECT_EQ(mem.read_obj<uint8_t>(GuestAddress(0x80000)).error().code(), EFAULT);
  GuestMemory now = as->pin();
  EXPECT_TRUE(now.contains(GuestAddress(0x80000), kPage));
  EXPECT_FALSE(now.contains(GuestAddress(0x40000), 1));

  // Moving a pin moves the hold; destroying the space's last holder unmaps nothing twice (ASan).
  GuestMemory moved = std::move(mem);
  as.reset();
  EXPECT_EQ(moved.read_obj<uint32_t>(GuestAddress(0x40008)).value(), 0xabad5aeau);
  ASSERT_TRUE(moved.write_obj<uint8_t>(GuestAddress(0x11000), 3));
  EXPECT_EQ(byte_at(a.get(), 0x1000), 3);
}

// A backend's space: its writes are reported in vhost's log, so it keeps none and shares none.
TEST(AddressSpace, AnUntrackedSpaceMarksNothingAndCannotBeExported) {
  UniqueFd fd = memfd(kPage);
  auto as = AddressSpace::create(DirtyTracking::Off).value();
  ASSERT_TRUE(as->add_region(GuestAddress(0), kPage, fd.get(), 0));
  ASSERT_TRUE(as->write_obj<uint64_t>(GuestAddress(8), 1));
  ASSERT_TRUE(as->store<uint32_t>(GuestAddress(16), 2, std::memory_order_release));
  as->map(GuestAddress(0), 64).value().release();
  EXPECT_TRUE(as->collect_dirty().empty());
  EXPECT_EQ(byte_at(fd.get(), 16), 2);
  int sv[2];
  ASSERT_EQ(::socketpair(AF_UNIX, SOCK_SEQPACKET | SOCK_CLOEXEC, 0, sv), 0);
  UniqueFd keep(sv[1]);
  EXPECT_EQ(as->export_to(UniqueFd(sv[0])).error().code(), EOPNOTSUPP);
}

std::vector<uint64_t> dirty_pages(AddressSpace& as) {
  std::vector<uint64_t> out;
  for (const auto& d : as.collect_dirty())
    for (size_t w = 0; w < d.bitmap.size(); ++w)
      for (int b = 0; b < 64; ++b)
        if (d.bitmap[w] >> b & 1) out.push_back(d.start.raw() + (w * 64 + b) * kPage);
  return out;
}

// Each kind of write marks exactly the pages it touched, once; reads mark nothing.
TEST(AddressSpace, WritesMarkTheirPagesDirtyForOneCollection) {
  UniqueFd fd = memfd(200 * kPage);
  auto as = AddressSpace::create().value();
  ASSERT_TRUE(as->add_region(GuestAddress(0), 100 * kPage, fd.get(), 0));
  ASSERT_TRUE(as->add_region(GuestAddress(100 * kPage), 100 * kPage, fd.get(), 100 * kPage));
  EXPECT_TRUE(dirty_pages(*as).empty());
  std::vector<uint8_t> buf(2 * kPage + 2);
  ASSERT_TRUE(as->write(GuestAddress(100 * kPage - kPage - 1), buf));  // pages 98, 99 | 100, 101
  ASSERT_TRUE(as->write_obj<uint32_t>(GuestAddress(70 * kPage + 12), 1));
  ASSERT_TRUE(as->store<uint64_t>(GuestAddress(150 * kPage), 1, std::memory_order_release));
  ASSERT_TRUE(as->copy(GuestAddress(180 * kPage + 8), GuestAddress(0), 16));  // reads page 0, writes 180
  ASSERT_TRUE(as->read(GuestAddress(10 * kPage), buf));
  ASSERT_TRUE(as->read_obj<uint32_t>(GuestAddress(30 * kPage)));
  const std::vector<uint64_t> want{70 * kPage, 98 * kPage, 99 * kPage, 100 * kPage, 101 * kPage, 150 * kPage, 180 * kPage};
  EXPECT_EQ(dirty_pages(*as), want);
  EXPECT_TRUE(dirty_pages(*as).empty());
  // A failed write marks nothing.
  EXPECT_FALSE(as->write(GuestAddress(200 * kPage - 4), buf));
  EXPECT_TRUE(dirty_pages(*as).empty());
}

// A view's writes are not seen one by one: its pages become dirty when it is released.
TEST(AddressSpace, AViewMarksItsPagesWhenReleased) {
  UniqueFd fd = memfd(16 * kPage);
  auto as = AddressSpace::create().value();
  ASSERT_TRUE(as->add_region(GuestAddress(0x100000), 16 * kPage, fd.get(), 0));
  MappedView v = as->map(GuestAddress(0x100000 + 3 * kPage + 100), kPage).value();  // pages 3 and 4
  ASSERT_TRUE(v.slice().write_obj<uint32_t>(0, 5));
  MappedView moved = std::move(v);
  EXPECT_TRUE(dirty_pages(*as).empty());
  moved.release();
  EXPECT_EQ(dirty_pages(*as), (std::vector<uint64_t>{0x100000 + 3 * kPage, 0x100000 + 4 * kPage}));
  moved.release();
  EXPECT_TRUE(dirty_pages(*as).empty());
}

// Four threads each write each of their own pages once, in their own order, across two regions,
// while the main thread collects rounds: every page shows up in exactly one round, and no page that
// nothing wrote shows up at all.
TEST(AddressSpaceConcurrent, EveryPageWrittenAppearsInExactlyOneRound) {
  constexpr uint64_t kPages = 4096;
  UniqueFd fd = memfd(kPages * kPage);
  auto as = AddressSpace::create().value();
  ASSERT_TRUE(as->add_region(GuestAddress(0), kPages / 2 * kPage, fd.get(), 0));
  ASSERT_TRUE(as->add_region(GuestAddress(1ull << 32), kPages / 2 * kPage, fd.get(), kPages / 2 * kPage));
  auto page_addr = [](uint64_t i) { return i < kPages / 2 ? i * kPage : (1ull << 32) + (i - kPages / 2) * kPage; };
  std::atomic<int> running{4};
  std::vector<std::thread> threads;
  for (uint64_t t = 0; t < 4; ++t)
    threads.emplace_back([&, t] {
      // Thread t owns the pages i with i % 5 == t (i % 5 == 4: nobody writes those).
      for (uint64_t k = 0; k < kPages; ++k) {
        uint64_t i = (k * 2654435761u + t) % kPages;
        if (i % 5 == t) (void)as->write_obj<uint64_t>(GuestAddress(page_addr(i) + 8 * t), i);
      }
      running.fetch_sub(1);
    });
  std::vector<int> seen(kPages);
  auto collect = [&] {
    for (uint64_t a : dirty_pages(*as)) {
      uint64_t i = a < (1ull << 32) ? a / kPage : kPages / 2 + (a - (1ull << 32)) / kPage;
      ++seen[i];
    }
  };
  int rounds = 0;
  while (running.load() > 0) {
    collect();
    ++rounds;
  }
  for (auto& t : threads) t.join();
  collect();
  for (uint64_t i = 0; i < kPages; ++i) ASSERT_EQ(seen[i], i % 5 == 4 ? 0 : 1) << "page " << i << " after " << rounds << " rounds";
}

// Threads keep reading and writing two regions while one of them is removed and added back, over
// and over. Every access either completes or fails with EFAULT; none touches the region once
// remove_region has returned (the file's bytes stay still until it is added back); under ASan a use
// of the unmapped region would be a crash, under TSan a race.
TEST(AddressSpaceConcurrent, ThreadsHammerARegionWhileItIsRemoved) {
  UniqueFd fd = memfd(4 * kPage);
  auto as = AddressSpace::create().value();
  const GuestAddress a(0x100000), b(0x200000);
  ASSERT_TRUE(as->add_region(a, kPage, fd.get(), 0));
  ASSERT_TRUE(as->add_region(b, kPage, fd.get(), kPage));
  std::atomic<bool> stop{false};
  std::atomic<uint64_t> done{0}, refused{0}, other{0};
  std::vector<std::thread> threads;
  for (int t = 0; t < 4; ++t)
    threads.emplace_back([&, t] {
      uint32_t n = 0;
      while (!stop.load(std::memory_order_relaxed)) {
        ++n;
        auto w = as->store<uint32_t>(b + 4 * t, n, std::memory_order_relaxed);
        auto r = as->read_obj<uint64_t>(a + 8 * t);
        auto c = as->write_obj<uint32_t>(b + 64 + 4 * t, n);
        for (auto* e : {&w, &c})
          if (*e) done.fetch_add(1, std::memory_order_relaxed);
          else if (e->error().code() == EFAULT) refused.fetch_add(1, std::memory_order_relaxed);
          else other.fetch_add(1);
        if (!r) other.fetch_add(1);
      }
    });
  for (int round = 0; round < 200; ++round) {
    ASSERT_TRUE(as->remove_region(b));
    std::array<uint8_t, 128> before{}, after{};
    ASSERT_EQ(::pread(fd.get(), before.data(), before.size(), off_t(kPage)), ssize_t(before.size()));
    // Let every thread make further accesses, then check nothing reached the removed region.
    const uint64_t seen = done.load() + refused.load();
    while (done.load() + refused.load() < seen + 64) std::this_thread::yield();
    ASSERT_EQ(::pread(fd.get(), after.data(), after.size(), off_t(kPage)), ssize_t(after.size()));
    ASSERT_EQ(before, after) << "a write reached region b after remove_region returned, round " << round;
    ASSERT_TRUE(as->add_region(b, kPage, fd.get(), kPage));
  }
  stop = true;
  for (auto& t : threads) t.join();
  EXPECT_EQ(other.load(), 0u);
  EXPECT_GT(done.load(), 0u);
  EXPECT_GT(refused.load(), 0u);
  EXPECT_EQ(as->generation(), 3u + 400u);
}

}  // namespace
}  // namespace evmm
