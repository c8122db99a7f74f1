#include "bus/io_bus.h"

#include <gtest/gtest.h>

#include <vector>

namespace evmm {
namespace {

struct Recorder : BusDevice {
  std::vector<std::pair<uint64_t, size_t>> reads, writes;
  void read(const BusRead& io) override {
    reads.emplace_back(io.offset, io.data.size());
    for (auto& b : io.data) b = 0x42;
  }
  void write(const BusWrite& io) override { writes.emplace_back(io.offset, io.data.size()); }
};

TEST(IoBus, InsertRejectsOverlapAndEmpty) {
  IoBus bus("pio");
  auto dev = std::make_shared<Recorder>();
  ASSERT_TRUE(bus.insert(0x100, 8, dev, "a"));
  EXPECT_EQ(bus.insert(0x107, 1, dev, "b").error().code(), EEXIST);
  EXPECT_EQ(bus.insert(0xf8, 9, dev, "c").error().code(), EEXIST);
  EXPECT_EQ(bus.insert(0x0, 0x1000, dev, "d").error().code(), EEXIST);
  EXPECT_TRUE(bus.insert(0xf8, 8, dev, "e"));
  EXPECT_TRUE(bus.insert(0x108, 8, dev, "f"));
  EXPECT_EQ(bus.insert(0x200, 0, dev, "g").error().code(), EINVAL);
  EXPECT_EQ(bus.insert(~0ull, 2, dev, "h").error().code(), EINVAL);
  EXPECT_EQ(bus.remove(0x300).error().code(), ENOENT);
  EXPECT_TRUE(bus.remove(0x108));
}

// Every access length against a 4-byte device at 0x10: only accesses wholly inside reach it.
TEST(IoBus, EveryAccessLengthHonoursTheRange) {
  for (size_t len : {1, 2, 4, 8}) {
    for (uint64_t addr = 0x08; addr < 0x18; ++addr) {
      IoBus bus("mmio");
      auto dev = std::make_shared<Recorder>();
      ASSERT_TRUE(bus.insert(0x10, 4, dev, "dev"));
      std::vector<uint8_t> buf(len, 0);
      bool inside = addr >= 0x10 && addr + len <= 0x14;
      EXPECT_EQ(bus.read(addr, buf, 0), inside) << "len " << len << " addr " << addr;
      EXPECT_EQ(bus.write(addr, buf, 0), inside);
      if (inside) {
        ASSERT_EQ(dev->reads.size(), 1u);
        EXPECT_EQ(dev->reads[0], std::make_pair(addr - 0x10, len));
        EXPECT_EQ(buf, std::vector<uint8_t>(len, 0x42));
      } else {
        EXPECT_TRUE(dev->reads.empty());
        EXPECT_EQ(buf, std::vector<uint8_t>(len, 0xff));
        EXPECT_EQ(bus.stats().unclaimed_reads, 1u);
        EXPECT_EQ(bus.stats().unclaimed_writes, 1u);
      }
    }
  }
}

TEST(IoBus, RangeAtTopOfAddressSpace) {
  IoBus bus("mmio");
  auto dev = std::make_shared<Recorder>();
  ASSERT_TRUE(bus.insert(~0ull - 3, 4, dev, "top"));
  uint8_t b[4];
  EXPECT_TRUE(bus.read(~0ull - 3, b, 0));
  EXPECT_TRUE(bus.read(~0ull, std::span(b, 1), 0));
  EXPECT_FALSE(bus.read(~0ull, std::span(b, 2), 0));
}

}  // namespace
}  // namespace evmm
