#include "memory/guest_slice.h"

#include <gtest/gtest.h>

#include <array>
#include <thread>
#include <vector>

namespace evmm {
namespace {

// 64 bytes at an 8-byte boundary, so that offsets name alignments.
struct Buffer {
  alignas(8) std::array<uint8_t, 64> bytes{};
  GuestSlice slice() { return GuestSlice::over_buffer(bytes); }
};

TEST(GuestSlice, CopiesInsideTheSlice) {
  Buffer b;
  auto s = b.slice();
  const std::array<uint8_t, 3> in{1, 2, 3};
  ASSERT_TRUE(s.copy_in(61, in));
  std::array<uint8_t, 3> out{};
  ASSERT_TRUE(s.copy_out(61, out));
  EXPECT_EQ(out, in);
  EXPECT_EQ(b.bytes[63], 3);
  ASSERT_TRUE(s.fill(0, 0xab, 2));
  EXPECT_EQ(b.bytes[1], 0xab);
  EXPECT_EQ(b.bytes[2], 0);
}

TEST(GuestSlice, AccessCrossingTheEndFailsAndTouchesNothing) {
  Buffer b;
  auto s = b.slice();
  const std::array<uint8_t, 4> in{9, 9, 9, 9};
  auto r = s.copy_in(62, in);
  ASSERT_FALSE(r);
  EXPECT_EQ(r.error().code(), EFAULT);
  EXPECT_EQ(b.bytes[62], 0);
  EXPECT_EQ(b.bytes[63], 0);
  std::array<uint8_t, 1> out{};
  EXPECT_FALSE(s.copy_out(64, out));
  EXPECT_TRUE(s.copy_out(64, std::span<uint8_t>{}));  // zero bytes at the end is inside
  EXPECT_FALSE(s.fill(1, 0, 64));
  // An offset that would wrap a 64-bit addition is still outside.
  EXPECT_FALSE(s.copy_out(~uint64_t{0}, out));
  EXPECT_FALSE(s.load<uint64_t>(~uint64_t{0} - 3, std::memory_order_seq_cst));
  EXPECT_FALSE(s.load<uint64_t>(64, std::memory_order_seq_cst));
  EXPECT_FALSE(GuestSlice().load<uint8_t>(0, std::memory_order_seq_cst));
}

TEST(GuestSlice, SubsliceIsCheckedAndRelative) {
  Buffer b;
  auto s = b.slice();
  EXPECT_FALSE(s.subslice(60, 5));
  auto sub = s.subslice(16, 8);
  ASSERT_TRUE(sub);
  EXPECT_EQ(sub->size(), 8u);
  ASSERT_TRUE(sub->store<uint32_t>(4, 0x01020304, std::memory_order_relaxed));
  EXPECT_EQ(b.bytes[20], 0x04);
  EXPECT_FALSE(sub->store<uint64_t>(8, 1, std::memory_order_relaxed));  // past the subslice, inside the buffer
  EXPECT_EQ(b.bytes[24], 0);
}

TEST(GuestSlice, ObjectsRoundTrip) {
  Buffer b;
  auto s = b.slice();
  struct Pair {
    uint32_t a;
    uint16_t b;
  };
  ASSERT_TRUE(s.write_obj(3, Pair{0xdeadbeef, 7}));  // plain copies need no alignment
  auto p = s.read_obj<Pair>(3);
  ASSERT_TRUE(p);
  EXPECT_EQ(p->a, 0xdeadbeefu);
  EXPECT_EQ(p->b, 7);
  EXPECT_FALSE(s.read_obj<Pair>(60));
}

TEST(GuestSlice, CopyFromMayOverlap) {
  Buffer b;
  for (int i = 0; i < 8; i++) b.bytes[i] = static_cast<uint8_t>(i + 1);
  auto s = b.slice();
  ASSERT_TRUE(s.subslice(2, 8)->copy_from(*s.subslice(0, 8)));
  EXPECT_EQ(b.bytes[2], 1);
  EXPECT_EQ(b.bytes[9], 8);
  EXPECT_FALSE(s.subslice(0, 4)->copy_from(*s.subslice(0, 8)));  // does not fit
}

TEST(GuestSlice, MisalignedAtomicsAreRefused) {
  Buffer b;
  auto s = b.slice();
  EXPECT_TRUE(s.atomic_ok<uint64_t>(8));
  EXPECT_FALSE(s.atomic_ok<uint64_t>(4));
  EXPECT_TRUE(s.atomic_ok<uint32_t>(4));
  EXPECT_FALSE(s.atomic_ok<uint16_t>(1));
  EXPECT_TRUE(s.atomic_ok<uint8_t>(63));
  auto r = s.fetch_or<uint64_t>(4, ~uint64_t{0}, std::memory_order_seq_cst);
  ASSERT_FALSE(r);
  EXPECT_EQ(r.error().code(), EINVAL);
  EXPECT_FALSE(s.store<uint32_t>(2, ~0u, std::memory_order_seq_cst));
  EXPECT_FALSE(s.exchange<uint16_t>(1, 0xffff, std::memory_order_seq_cst));
  for (uint8_t byte : b.bytes) EXPECT_EQ(byte, 0);
}

TEST(GuestSlice, AtomicsReturnThePreviousValue) {
  Buffer b;
  auto s = b.slice();
  EXPECT_EQ(*s.fetch_or<uint64_t>(8, 0b101, std::memory_order_seq_cst), 0u);
  EXPECT_EQ(*s.fetch_and<uint64_t>(8, ~uint64_t{0b1}, std::memory_order_seq_cst), 0b101u);
  EXPECT_EQ(*s.load<uint64_t>(8, std::memory_order_acquire), 0b100u);
  EXPECT_EQ(*s.exchange<uint32_t>(8, 7, std::memory_order_acq_rel), 0b100u);
  EXPECT_EQ(*s.compare_exchange<uint32_t>(8, 6, 9, std::memory_order_seq_cst), 7u);  // fails: holds 7
  EXPECT_EQ(*s.load<uint32_t>(8, std::memory_order_seq_cst), 7u);
  EXPECT_EQ(*s.compare_exchange<uint32_t>(8, 7, 9, std::memory_order_seq_cst), 7u);  // succeeds
  EXPECT_EQ(*s.load<uint8_t>(8, std::memory_order_seq_cst), 9u);
}

TEST(GuestSlice, FetchOrFromThreadsLosesNoBit) {
  Buffer b;
  auto s = b.slice();
  constexpr int kThreads = 4;
  std::vector<std::thread> ts;
  for (int t = 0; t < kThreads; t++)
    ts.emplace_back([&, t] {
      for (int bit = t; bit < 64; bit += kThreads) (void)s.fetch_or<uint64_t>(16, uint64_t{1} << bit, std::memory_order_seq_cst);
    });
  for (auto& t : ts) t.join();
  EXPECT_EQ(*s.load<uint64_t>(16, std::memory_order_seq_cst), ~uint64_t{0});
}

}  // namespace
}  // namespace evmm
