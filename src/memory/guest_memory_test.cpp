#include "memory/guest_memory.h"

#include <unistd.h>

#include <gtest/gtest.h>

#include "memory/layout.h"

namespace evmm {
namespace {

using namespace layout;

TEST(GuestMemory, PcLayoutSmall) {
  auto mem = GuestMemory::create_pc(64 * MiB);
  ASSERT_TRUE(mem) << mem.error().message();
  auto r = mem->regions();
  ASSERT_EQ(r.size(), 3u);
  EXPECT_EQ(r[0].start, GuestAddress(0));
  EXPECT_EQ(r[0].end(), GuestAddress(kLowRamEnd));
  EXPECT_EQ(r[1].start, GuestAddress(kBiosStart));
  EXPECT_EQ(r[1].kind, RegionKind::Bios);
  EXPECT_EQ(r[2].start, GuestAddress(kHighRamStart));
  EXPECT_EQ(r[2].end(), GuestAddress(64 * MiB));
  // The VGA hole is not backed.
  EXPECT_FALSE(mem->contains(GuestAddress(0xA0000), 1));
  EXPECT_FALSE(mem->contains(GuestAddress(64 * MiB), 1));
}

TEST(GuestMemory, PcLayoutLargeSplitsAroundMmioHole) {
  auto mem = GuestMemory::create_pc(4 * GiB);
  ASSERT_TRUE(mem) << mem.error().message();
  auto r = mem->regions();
  ASSERT_EQ(r.size(), 4u);
  EXPECT_EQ(r[2].end(), GuestAddress(kMmioHoleStart));
  EXPECT_EQ(r[3].start, GuestAddress(kMmioHoleEnd));
  EXPECT_EQ(r[3].size, 4 * GiB - kMmioHoleStart);
  EXPECT_FALSE(mem->contains(GuestAddress(kLapicBase), 4));
}

TEST(GuestMemory, RejectsBadSizes) {
  EXPECT_EQ(GuestMemory::create_pc(1 * MiB).error().code(), EINVAL);
  EXPECT_EQ(GuestMemory::create_pc(3 * MiB + 5).error().code(), EINVAL);
  EXPECT_EQ(GuestMemory::create({{GuestAddress(0), 4096}, {GuestAddress(0), 8192}}).error().code(), EINVAL);
  EXPECT_EQ(GuestMemory::create({{GuestAddress(0x1001), 4096}}).error().code(), EINVAL);
  EXPECT_EQ(GuestMemory::create({{GuestAddress(~0ull & ~0xfffull), 8192}}).error().code(), EINVAL);
}

TEST(GuestMemory, ReadWriteRoundTripAndObjects) {
  auto mem = GuestMemory::create_pc(8 * MiB);
  ASSERT_TRUE(mem);
  ASSERT_TRUE(mem->write_obj<uint64_t>(GuestAddress(0x100000), 0x1122334455667788ull));
  EXPECT_EQ(*mem->read_obj<uint64_t>(GuestAddress(0x100000)), 0x1122334455667788ull);
  EXPECT_EQ(*mem->read_obj<uint8_t>(GuestAddress(0x100000)), 0x88);
}

TEST(GuestMemory, AccessCrossingAdjacentRegionsIsSplit) {
  // Two regions that touch: one access spans both and lands in two different host mappings.
  auto mem = GuestMemory::create({{GuestAddress(0), 4096}, {GuestAddress(4096), 4096}});
  ASSERT_TRUE(mem);
  ASSERT_NE(mem->regions()[0].host + 4096, mem->regions()[1].host);
  ASSERT_TRUE(mem->write_obj<uint32_t>(GuestAddress(4094), 0xaabbccdd));
  EXPECT_EQ(mem->regions()[0].host[4094], 0xdd);
  EXPECT_EQ(mem->regions()[0].host[4095], 0xcc);
  EXPECT_EQ(mem->regions()[1].host[0], 0xbb);
  EXPECT_EQ(mem->regions()[1].host[1], 0xaa);
  EXPECT_EQ(*mem->read_obj<uint32_t>(GuestAddress(4094)), 0xaabbccddu);
}

TEST(GuestMemory, IoVectorsSplitAtRegionsAndRefuseHoles) {
  auto mem = GuestMemory::create({{GuestAddress(0), 4096}, {GuestAddress(4096), 4096}, {GuestAddress(16384), 4096}});
  ASSERT_TRUE(mem);
  std::vector<iovec> v;
  ASSERT_TRUE(mem->io_vectors(GuestAddress(4000), 200, v));
  ASSERT_EQ(v.size(), 2u);
  EXPECT_EQ(v[0].iov_base, mem->regions()[0].host + 4000);
  EXPECT_EQ(v[0].iov_len, 96u);
  EXPECT_EQ(v[1].iov_base, mem->regions()[1].host);
  EXPECT_EQ(v[1].iov_len, 104u);
  // Into the hole at 8192: refused, and nothing is appended.
  auto r = mem->io_vectors(GuestAddress(8000), 400, v);
  ASSERT_FALSE(r);
  EXPECT_EQ(r.error().code(), EFAULT);
  EXPECT_EQ(v.size(), 2u);
  ASSERT_TRUE(mem->io_vectors(GuestAddress(16384), 0, v));
  EXPECT_EQ(v.size(), 2u);
}

TEST(GuestMemory, AccessIntoHoleFailsAndCopiesNothing) {
  auto mem = GuestMemory::create_pc(8 * MiB);
  ASSERT_TRUE(mem);
  ASSERT_TRUE(mem->write_obj<uint32_t>(GuestAddress(kLowRamEnd - 4), 0x11111111));
  // Straddles the end of low RAM into the VGA hole: refused as a whole.
  auto w = mem->write_obj<uint64_t>(GuestAddress(kLowRamEnd - 4), ~0ull);
  ASSERT_FALSE(w);
  EXPECT_EQ(w.error().code(), EFAULT);
  EXPECT_EQ(*mem->read_obj<uint32_t>(GuestAddress(kLowRamEnd - 4)), 0x11111111u);
  EXPECT_FALSE(mem->read_obj<uint8_t>(GuestAddress(8 * MiB)));
  EXPECT_FALSE(mem->read_obj<uint64_t>(GuestAddress(~0ull - 3)));  // would wrap
  EXPECT_FALSE(mem->slice(GuestAddress(kLowRamEnd - 4), 8));
  EXPECT_TRUE(mem->slice(GuestAddress(kLowRamEnd - 4), 4));
}

// A slice is a window onto the same guest bytes the copying accessors see, and stays inside its region.
TEST(GuestMemory, SliceSeesGuestBytesAndStopsAtItsEnd) {
  auto mem = GuestMemory::create_pc(8 * MiB);
  ASSERT_TRUE(mem);
  auto s = mem->slice(GuestAddress(kLowRamEnd - 16), 16);
  ASSERT_TRUE(s);
  ASSERT_TRUE(s->store<uint64_t>(8, 0x0102030405060708, std::memory_order_seq_cst));
  EXPECT_EQ(*mem->read_obj<uint64_t>(GuestAddress(kLowRamEnd - 8)), 0x0102030405060708u);
  ASSERT_TRUE(mem->write_obj<uint32_t>(GuestAddress(kLowRamEnd - 16), 0xa5a5a5a5));
  EXPECT_EQ(*s->fetch_or<uint32_t>(0, 0x5a, std::memory_order_seq_cst), 0xa5a5a5a5u);
  EXPECT_EQ(*mem->read_obj<uint32_t>(GuestAddress(kLowRamEnd - 16)), 0xa5a5a5ffu);
  // The slice ends where low RAM does: one more byte is refused, and so is a misaligned word.
  EXPECT_EQ(s->store<uint8_t>(16, 1, std::memory_order_relaxed).error().code(), EFAULT);
  EXPECT_EQ(s->load<uint64_t>(4, std::memory_order_relaxed).error().code(), EINVAL);
}

}  // namespace
}  // namespace evmm
