#include "devices/fw_cfg.h"

#include <gtest/gtest.h>

#include <string>
#include <vector>

namespace evmm {
namespace {

struct FwCfgTest : ::testing::Test {
  FwCfg cfg;

  void select(uint16_t key) {
    uint8_t b[2] = {static_cast<uint8_t>(key), static_cast<uint8_t>(key >> 8)};
    cfg.write({0, b, 0});
  }
  uint8_t data() {
    uint8_t v = 0xaa;
    cfg.read({1, std::span(&v, 1), 0});
    return v;
  }
  std::vector<uint8_t> read_item(uint16_t key, size_t n) {
    select(key);
    std::vector<uint8_t> out(n);
    for (auto& b : out) b = data();
    return out;
  }
  static uint64_t be(const std::vector<uint8_t>& v, size_t at, size_t n) {
    uint64_t x = 0;
    for (size_t i = 0; i < n; ++i) x = (x << 8) | v[at + i];
    return x;
  }
};

TEST_F(FwCfgTest, SignatureAndId) {
  EXPECT_EQ(read_item(fw_cfg::kSignature, 4), (std::vector<uint8_t>{'Q', 'E', 'M', 'U'}));
  EXPECT_EQ(read_item(fw_cfg::kId, 4), (std::vector<uint8_t>{1, 0, 0, 0}));
}

TEST_F(FwCfgTest, NumericItemsAreLittleEndian) {
  ASSERT_TRUE(cfg.add_u64(fw_cfg::kRamSize, 0x0000000180000000ull));
  ASSERT_TRUE(cfg.add_u16(fw_cfg::kNbCpus, 4));
  ASSERT_TRUE(cfg.add_u16(fw_cfg::kMaxCpus, 0x0102));
  ASSERT_TRUE(cfg.add_u64(fw_cfg::kMaxRam, 0x1'4000'0000ull));
  ASSERT_TRUE(cfg.add_u32(0x8003, 0xdeadbeef));
  EXPECT_EQ(read_item(fw_cfg::kRamSize, 8), (std::vector<uint8_t>{0, 0, 0, 0x80, 1, 0, 0, 0}));
  EXPECT_EQ(read_item(fw_cfg::kNbCpus, 2), (std::vector<uint8_t>{4, 0}));
  EXPECT_EQ(read_item(fw_cfg::kMaxCpus, 2), (std::vector<uint8_t>{2, 1}));
  EXPECT_EQ(read_item(fw_cfg::kMaxRam, 8), (std::vector<uint8_t>{0, 0, 0, 0x40, 1, 0, 0, 0}));
  EXPECT_EQ(read_item(0x8003, 4), (std::vector<uint8_t>{0xef, 0xbe, 0xad, 0xde}));
}

TEST_F(FwCfgTest, ReadsPastTheEndAndUnknownKeysReturnZero) {
  EXPECT_EQ(read_item(fw_cfg::kSignature, 6), (std::vector<uint8_t>{'Q', 'E', 'M', 'U', 0, 0}));
  EXPECT_EQ(read_item(0x1234, 3), (std::vector<uint8_t>{0, 0, 0}));
  EXPECT_EQ(cfg.stats().unknown_selects, 1u);
  // Reselecting starts over from the first byte.
  EXPECT_EQ(read_item(fw_cfg::kSignature, 1), std::vector<uint8_t>{'Q'});
}

TEST_F(FwCfgTest, OffsetZeroReadsDataAsQemusCombinedPort) {
  select(fw_cfg::kSignature);
  uint8_t v = 0;
  cfg.read({0, std::span(&v, 1), 0});
  EXPECT_EQ(v, 'Q');
  EXPECT_EQ(data(), 'E');
}

TEST_F(FwCfgTest, FileDirectoryIsSortedAndBigEndian) {
  auto k1 = cfg.add_file("etc/zeta", {1, 2, 3});
  auto k2 = cfg.add_file("etc/alpha", std::vector<uint8_t>(0x1234, 7));
  auto k3 = cfg.add_file("opt/org.evmm/test", {9});
  ASSERT_TRUE(k1 && k2 && k3);
  EXPECT_EQ(*k1, 0x20);
  EXPECT_EQ(*k2, 0x21);
  EXPECT_EQ(*k3, 0x22);

  auto dir = read_item(fw_cfg::kFileDir, 4 + 3 * 64);
  EXPECT_EQ(be(dir, 0, 4), 3u);
  struct Want { const char* name; uint32_t size; uint16_t key; };
  Want want[] = {{"etc/alpha", 0x1234, 0x21}, {"etc/zeta", 3, 0x20}, {"opt/org.evmm/test", 1, 0x22}};
  for (size_t i = 0; i < 3; ++i) {
    size_t e = 4 + i * 64;
    EXPECT_EQ(be(dir, e, 4), want[i].size) << i;
    EXPECT_EQ(be(dir, e + 4, 2), want[i].key) << i;
    EXPECT_EQ(be(dir, e + 6, 2), 0u) << i;
    std::string name(reinterpret_cast<const char*>(&dir[e + 8]));
    EXPECT_EQ(name, want[i].name);
    EXPECT_EQ(dir[e + 63], 0);
  }
  EXPECT_EQ(read_item(0x20, 4), (std::vector<uint8_t>{1, 2, 3, 0}));
}

TEST_F(FwCfgTest, EmptyFileDirectoryHasZeroCount) {
  EXPECT_EQ(read_item(fw_cfg::kFileDir, 5), (std::vector<uint8_t>{0, 0, 0, 0, 0}));
}

TEST_F(FwCfgTest, FileErrors) {
  ASSERT_TRUE(cfg.add_file("etc/a", {}));
  EXPECT_EQ(cfg.add_file("etc/a", {1}).error().code(), EEXIST);
  EXPECT_EQ(cfg.add_file(std::string(56, 'x'), {}).error().code(), ENAMETOOLONG);
  EXPECT_TRUE(cfg.add_file(std::string(55, 'x'), {}));
  EXPECT_EQ(cfg.add_file("", {}).error().code(), EINVAL);
  for (size_t i = 2; i < FwCfg::kMaxFiles; ++i) ASSERT_TRUE(cfg.add_file("f" + std::to_string(i), {}));
  EXPECT_EQ(cfg.add_file("one-too-many", {}).error().code(), ENOSPC);
}

TEST_F(FwCfgTest, ItemErrors) {
  EXPECT_EQ(cfg.add_u32(fw_cfg::kSignature, 0).error().code(), EEXIST);
  EXPECT_EQ(cfg.add_item(fw_cfg::kFileDir, {}).error().code(), EINVAL);
  EXPECT_EQ(cfg.add_item(0x20, {}).error().code(), EINVAL);
  EXPECT_EQ(cfg.add_item(0x4005, {}).error().code(), EINVAL);
  ASSERT_TRUE(cfg.add_u16(fw_cfg::kNbCpus, 1));
  EXPECT_EQ(cfg.add_u16(fw_cfg::kNbCpus, 2).error().code(), EEXIST);
}

TEST_F(FwCfgTest, WritesAreIgnoredAndCounted) {
  select(fw_cfg::kSignature);
  uint8_t b = 'X';
  cfg.write({1, std::span<const uint8_t>(&b, 1), 0});
  cfg.write({0, std::span<const uint8_t>(&b, 1), 0});  // an 8-bit selector write is a data write too
  EXPECT_EQ(cfg.stats().data_writes, 2u);
  EXPECT_EQ(data(), 'Q') << "data writes neither change the item nor move the offset";
  uint8_t wide[2] = {0, 0};
  cfg.read({0, wide, 0});
  EXPECT_EQ(wide[0], 0xff);
  EXPECT_EQ(wide[1], 0xff);
  EXPECT_EQ(cfg.stats().bad_accesses, 1u);
  EXPECT_EQ(data(), 'E');
}

TEST_F(FwCfgTest, WriteChannelBitIsIgnoredOnSelect) {
  select(fw_cfg::kWriteChannel | fw_cfg::kSignature);
  EXPECT_EQ(data(), 'Q');
}

struct FwCfgDmaTest : FwCfgTest {
  GuestMemory mem = *GuestMemory::create({RegionSpec{GuestAddress(0), 0x10000}});
  static constexpr uint64_t kDesc = 0x1000, kBuf = 0x2000;

  void SetUp() override { cfg.enable_dma(mem); }
  void put_be32(uint64_t at, uint32_t v) {
    uint8_t b[4] = {uint8_t(v >> 24), uint8_t(v >> 16), uint8_t(v >> 8), uint8_t(v)};
    ASSERT_TRUE(mem.write(GuestAddress(at), b));
  }
  // Writes an FWCfgDmaAccess at kDesc and kicks it the way Linux does: high half, then low half.
  uint32_t dma(uint32_t control, uint32_t length, uint64_t target = kBuf) {
    put_be32(kDesc, control);
    put_be32(kDesc + 4, length);
    put_be32(kDesc + 8, uint32_t(target >> 32));
    put_be32(kDesc + 12, uint32_t(target));
    uint8_t hi[4] = {0, 0, 0, 0};
    uint8_t lo[4] = {0, 0, uint8_t(kDesc >> 8), uint8_t(kDesc)};
    cfg.write({4, hi, 0});
    cfg.write({8, lo, 0});
    uint8_t c[4];
    EXPECT_TRUE(mem.read(GuestAddress(kDesc), c));
    return uint32_t(c[0]) << 24 | c[1] << 16 | c[2] << 8 | c[3];
  }
  std::vector<uint8_t> buf(size_t n) {
    std::vector<uint8_t> out(n);
    EXPECT_TRUE(mem.read(GuestAddress(kBuf), out));
    return out;
  }
};

TEST_F(FwCfgTest, DmaRegisterAbsentWithoutEnableDma) {
  uint8_t b[4] = {};
  cfg.read({4, b, 0});
  EXPECT_EQ(b[0], 0xff);
  EXPECT_EQ(cfg.stats().bad_accesses, 1u);
}

TEST_F(FwCfgDmaTest, IdAndSignature) {
  EXPECT_EQ(read_item(fw_cfg::kId, 4), (std::vector<uint8_t>{3, 0, 0, 0}));
  uint8_t sig[8];
  cfg.read({4, std::span(sig, 4), 0});
  cfg.read({8, std::span(sig + 4, 4), 0});
  EXPECT_EQ(std::string(sig, sig + 8), "QEMU CFG");
}

TEST_F(FwCfgDmaTest, SelectAndReadZeroFillsPastTheEnd) {
  ASSERT_TRUE(mem.fill(GuestAddress(kBuf), 0xee, 16));
  EXPECT_EQ(dma(fw_cfg::kSignature << 16 | 0x08 | 0x02, 6), 0u);
  EXPECT_EQ(buf(7), (std::vector<uint8_t>{'Q', 'E', 'M', 'U', 0, 0, 0xee}));
  EXPECT_EQ(cfg.stats().dma_transfers, 1u);
}

TEST_F(FwCfgDmaTest, SkipThenReadSharesTheOffsetWithTheDataPort) {
  auto key = cfg.add_file("etc/x", {1, 2, 3, 4, 5, 6});
  ASSERT_TRUE(key);
  EXPECT_EQ(dma(uint32_t(*key) << 16 | 0x08 | 0x04, 2), 0u);
  EXPECT_EQ(dma(0x02, 2), 0u);
  EXPECT_EQ(buf(2), (std::vector<uint8_t>{3, 4}));
  EXPECT_EQ(data(), 5);
}

TEST_F(FwCfgDmaTest, WritesAndBadTargetsReportErrors) {
  EXPECT_EQ(dma(fw_cfg::kSignature << 16 | 0x08 | 0x10, 4), 1u);
  EXPECT_EQ(dma(fw_cfg::kSignature << 16 | 0x08 | 0x02, 4, 0x100000), 1u);
  EXPECT_EQ(cfg.stats().dma_errors, 2u);
  uint8_t two[2] = {0, 0};
  cfg.write({4, two, 0});
  EXPECT_EQ(cfg.stats().bad_accesses, 1u);
}

}  // namespace
}  // namespace evmm
