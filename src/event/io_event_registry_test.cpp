#include "event/io_event_registry.h"

#include <gtest/gtest.h>

#include <atomic>
#include <cstring>
#include <thread>
#include <vector>

namespace evmm {
namespace {

std::shared_ptr<const EventFd> make_efd() { return std::make_shared<const EventFd>(std::move(*EventFd::create())); }
uint64_t count(const std::shared_ptr<const EventFd>& e) { return *e->consume(); }

// A write of len bytes of v, placed at an odd offset so the registry must not assume alignment.
bool write(IoEventRegistry& reg, IoSpace s, uint64_t addr, uint64_t v, size_t len) {
  alignas(8) uint8_t buf[16];
  std::memcpy(buf + 1, &v, 8);
  return reg.dispatch_write(s, addr, std::span<const uint8_t>(buf + 1, len));
}

TEST(IoEventRegistryConcurrent, EachMistakeHasItsOwnError) {
  IoEventRegistry reg(nullptr, {.max_registrations = 4});
  auto e = make_efd();
  auto err = [&](IoSpace s, uint64_t a, uint8_t l, IoMatch m) { return reg.add(s, a, l, m, e).error(); };

  Error bad_len = err(IoSpace::Mmio, 0x1000, 3, IoMatch::any());
  EXPECT_EQ(bad_len.code(), EINVAL);
  EXPECT_NE(bad_len.context().find("bad length"), std::string::npos);
  EXPECT_EQ(err(IoSpace::Pio, 0x10, 0, IoMatch::any()).code(), EINVAL);           // len 0 is MMIO only
  EXPECT_EQ(err(IoSpace::Mmio, 0x1000, 0, IoMatch::value(1)).code(), EINVAL);     // as KVM: no datamatch at len 0
  Error wide = err(IoSpace::Pio, 0x10, 1, IoMatch::value(0x100));
  EXPECT_EQ(wide.code(), EINVAL);
  EXPECT_NE(wide.context().find("wider than the length"), std::string::npos);
  EXPECT_EQ(err(IoSpace::Pio, 0xfffe, 4, IoMatch::any()).code(), EINVAL);         // past port 0xffff
  EXPECT_EQ(err(IoSpace::Mmio, ~0ull - 1, 4, IoMatch::any()).code(), EINVAL);    // wraps
  EXPECT_EQ(reg.add(IoSpace::Pio, 0x10, 2, IoMatch::any(), nullptr).error().code(), EBADF);

  auto a = reg.add(IoSpace::Mmio, 0x1000, 4, IoMatch::value(7), e);
  ASSERT_TRUE(a);
  Error mismatch = err(IoSpace::Mmio, 0x1000, 2, IoMatch::value(7));
  EXPECT_EQ(mismatch.code(), EINVAL);
  EXPECT_NE(mismatch.context().find("length mismatch"), std::string::npos);
  EXPECT_NE(mismatch.context(), wide.context());
  EXPECT_EQ(err(IoSpace::Mmio, 0x1000, 4, IoMatch::value(7)).code(), EEXIST);
  EXPECT_EQ(err(IoSpace::Mmio, 0x1002, 2, IoMatch::any()).code(), EADDRINUSE);     // inside the group's range
  EXPECT_EQ(err(IoSpace::Mmio, 0xffc, 8, IoMatch::any()).code(), EADDRINUSE);      // covers its start
  auto b = reg.add(IoSpace::Pio, 0x1000, 2, IoMatch::any(), e);   // other space: no conflict
  auto c = reg.add(IoSpace::Mmio, 0x1004, 4, IoMatch::any(), e);  // adjacent: fine
  auto d = reg.add(IoSpace::Mmio, 0x1000, 4, IoMatch::value(8), e);  // same group, other value
  ASSERT_TRUE(b && c && d);
  EXPECT_EQ(err(IoSpace::Mmio, 0x2000, 4, IoMatch::any()).code(), ENOSPC);

  ASSERT_TRUE(a->release());
  EXPECT_EQ(a->release().error().code(), ENOENT);
  EXPECT_TRUE(reg.add(IoSpace::Mmio, 0x2000, 4, IoMatch::any(), e));  // the slot came back
}

TEST(IoEventRegistryConcurrent, MatchesAsKvmDoes) {
  IoEventRegistry reg(nullptr);
  auto wild = make_efd(), v1 = make_efd(), v2 = make_efd(), any_len = make_efd(), q = make_efd();
  auto r1 = reg.add(IoSpace::Pio, 0x60, 2, IoMatch::any(), wild);
  auto r2 = reg.add(IoSpace::Pio, 0x60, 2, IoMatch::value(0xbeef), v1);
  auto r3 = reg.add(IoSpace::Pio, 0x60, 2, IoMatch::value(0x0001), v2);
  auto r4 = reg.add(IoSpace::Mmio, 0x5000, 0, IoMatch::any(), any_len);
  auto r5 = reg.add(IoSpace::Mmio, 0x6000, 8, IoMatch::value(0x0123456789abcdefull), q);
  ASSERT_TRUE(r1 && r2 && r3 && r4 && r5);

  EXPECT_TRUE(write(reg, IoSpace::Pio, 0x60, 0xbeef, 2));
  EXPECT_EQ(count(wild), 1u);
  EXPECT_EQ(count(v1), 1u);
  EXPECT_EQ(count(v2), 0u);
  EXPECT_FALSE(write(reg, IoSpace::Pio, 0x60, 0xef, 1));    // other length: a miss, even for the wildcard
  EXPECT_FALSE(write(reg, IoSpace::Pio, 0x60, 0xbeef, 4));
  EXPECT_FALSE(write(reg, IoSpace::Pio, 0x61, 0xbe, 1));    // inside the range, not at its address
  EXPECT_FALSE(write(reg, IoSpace::Mmio, 0x60, 0xbeef, 2)); // other space
  EXPECT_EQ(count(wild), 0u);
  EXPECT_TRUE(write(reg, IoSpace::Pio, 0x60, 0x10001, 2));  // only the low 2 bytes are written
  EXPECT_EQ(count(v2), 1u);
  EXPECT_EQ(count(wild), 1u);

  for (size_t len : {1, 2, 3, 4, 8}) EXPECT_TRUE(write(reg, IoSpace::Mmio, 0x5000, 0, len));
  EXPECT_EQ(count(any_len), 5u);
  EXPECT_FALSE(write(reg, IoSpace::Mmio, 0x5001, 0, 1));

  EXPECT_TRUE(write(reg, IoSpace::Mmio, 0x6000, 0x0123456789abcdefull, 8));
  EXPECT_FALSE(write(reg, IoSpace::Mmio, 0x6000, 0x0023456789abcdefull, 8));
  EXPECT_FALSE(write(reg, IoSpace::Mmio, 0x6000, 0x89abcdef, 4));
  EXPECT_EQ(count(q), 1u);
  EXPECT_EQ(count(v1) + count(v2), 0u);
}

TEST(IoEventRegistryConcurrent, GroupAllowsManyEventfdsOnOneValue) {
  IoEventRegistry reg(nullptr);
  auto a = make_efd(), b = make_efd();
  auto ra = reg.add(IoSpace::Mmio, 0x100, 4, IoMatch::value(5), a);
  auto rb = reg.add(IoSpace::Mmio, 0x100, 4, IoMatch::value(5), b);
  ASSERT_TRUE(ra && rb);
  EXPECT_TRUE(write(reg, IoSpace::Mmio, 0x100, 5, 4));
  EXPECT_EQ(count(a), 1u);
  EXPECT_EQ(count(b), 1u);
  ASSERT_TRUE(ra->release());
  EXPECT_TRUE(write(reg, IoSpace::Mmio, 0x100, 5, 4));
  EXPECT_EQ(count(a), 0u);
  EXPECT_EQ(count(b), 1u);
}

TEST(IoEventRegistryConcurrent, HandlesUndoThemselves) {
  auto e = make_efd();
  IoEventRegistry reg(nullptr);
  {
    auto r = reg.add(IoSpace::Pio, 0x80, 1, IoMatch::any(), e);
    ASSERT_TRUE(r);
    IoEventRegistration moved = std::move(*r);
    EXPECT_FALSE(r->active());
    EXPECT_EQ(r->release().error().code(), ENOENT);
    EXPECT_TRUE(write(reg, IoSpace::Pio, 0x80, 0, 1));
    EXPECT_EQ(reg.stats().registrations, 1u);
  }
  EXPECT_EQ(reg.stats().registrations, 0u);
  EXPECT_FALSE(write(reg, IoSpace::Pio, 0x80, 0, 1));
  EXPECT_EQ(count(e), 1u);

  // A registration that outlives its registry becomes inert.
  IoEventRegistration orphan;
  {
    IoEventRegistry gone(nullptr);
    orphan = std::move(*gone.add(IoSpace::Pio, 0x80, 1, IoMatch::any(), e));
  }
  EXPECT_EQ(orphan.release().error().code(), ENOENT);
}

// Seed 001: once deassign returns, no write in flight on another vCPU may still signal.
TEST(IoEventRegistryConcurrent, NoSignalAfterReleaseReturnsUnderConcurrentWrites) {
  IoEventRegistry reg(nullptr);
  auto keep = make_efd();
  auto keeper = reg.add(IoSpace::Mmio, 0x2000, 4, IoMatch::any(), keep);  // keeps the table non-trivial
  ASSERT_TRUE(keeper);
  std::atomic<bool> stop{false};
  std::atomic<uint64_t> dispatched{0};
  std::vector<std::thread> vcpus;
  for (int t = 0; t < 2; ++t)
    vcpus.emplace_back([&] {
      while (!stop.load(std::memory_order_relaxed)) {
        write(reg, IoSpace::Mmio, 0x1000, 0x42, 4);
        dispatched.fetch_add(1, std::memory_order_relaxed);
      }
    });
  int violations = 0;
  uint64_t signalled = 0;
  for (int round = 0; round < 50; ++round) {
    auto e = make_efd();
    auto r = reg.add(IoSpace::Mmio, 0x1000, 4, IoMatch::value(0x42), e);
    ASSERT_TRUE(r);
    uint64_t seen = dispatched.load();
    while (dispatched.load() < seen + 20) std::this_thread::yield();
    ASSERT_TRUE(r->release());
    signalled += count(e);
    seen = dispatched.load();
    while (dispatched.load() < seen + 50) std::this_thread::yield();  // writes keep coming
    violations += count(e) != 0;
  }
  stop = true;
  for (auto& t : vcpus) t.join();
  EXPECT_EQ(violations, 0);
  EXPECT_GT(signalled, 50u * 10);  // the writes really did hit while registered
}

TEST(IoEventRegistryConcurrent, TenThousandRegistrations) {
  IoEventRegistry reg(nullptr);
  std::vector<std::shared_ptr<const EventFd>> efds;
  std::vector<IoEventRegistration> regs;
  for (uint64_t i = 0; i < 10000; ++i) {
    efds.push_back(make_efd());
    auto r = reg.add(IoSpace::Mmio, 0x10000000 + i * 8, 4, IoMatch::value(i & 0xffff), efds.back());
    ASSERT_TRUE(r) << r.error().message();
    regs.push_back(std::move(*r));
  }
  EXPECT_EQ(reg.stats().registrations, 10000u);
  for (uint64_t i = 0; i < 10000; i += 997) {
    EXPECT_TRUE(write(reg, IoSpace::Mmio, 0x10000000 + i * 8, i & 0xffff, 4));
    EXPECT_FALSE(write(reg, IoSpace::Mmio, 0x10000000 + i * 8, (i + 1) & 0xffff, 4));
    EXPECT_EQ(count(efds[i]), 1u);
  }
}

}  // namespace
}  // namespace evmm
