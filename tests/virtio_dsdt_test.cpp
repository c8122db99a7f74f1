// The guest runtime's DSDT scan (guests/runtime/virtio_dsdt.c, compiled for the host here) on the AML
// evmm builds: every LNRO0005 device is found with its window and GSI, whatever its _STA says. No KVM.
#include <gtest/gtest.h>

#include <vector>

#include "boot/platform_tables.h"
#include "guests/runtime/include/rt/virtio_dsdt.h"

namespace evmm {
namespace {

std::vector<rt_virtio_mmio> scan(const boot::aml::Bytes& aml, int* bad, int max = 8) {
  std::vector<rt_virtio_mmio> out(8);
  int n = rt_virtio_scan_aml(aml.data(), aml.data() + aml.size(), out.data(), max, bad);
  out.resize(size_t(n));
  return out;
}

TEST(VirtioDsdtScan, FindsEveryDeviceWithItsWindowAndGsi) {
  std::vector<VirtioMmioDesc> devs;
  const uint32_t gsis[] = {5, 6, 7, 11, 12, 13, 14, 15};
  for (uint32_t i = 0; i < 8; ++i) devs.push_back({0xd0001000ull + i * 0x1000, 0x200, gsis[i], i % 2 == 0});
  int bad = -1;
  auto found = scan(boot::dsdt_aml(devs), &bad);
  EXPECT_EQ(bad, 0);
  ASSERT_EQ(found.size(), 8u);
  for (size_t i = 0; i < 8; ++i) {
    EXPECT_EQ(found[i].base, devs[i].base) << i;
    EXPECT_EQ(found[i].gsi, devs[i].gsi) << i;
  }
  EXPECT_EQ(scan(boot::dsdt_aml(devs), &bad, 3).size(), 3u);
}

TEST(VirtioDsdtScan, NoDevicesInThePlainTable) {
  int bad = -1;
  EXPECT_TRUE(scan(boot::dsdt_aml(), &bad).empty());
  EXPECT_EQ(bad, 0);
}

// Cut short anywhere, the table yields only devices that were whole, and the scan never reads past it.
TEST(VirtioDsdtScan, TruncatedTablesNeverOverread) {
  std::vector<VirtioMmioDesc> devs{{0xd0001000, 0x200, 5}, {0xd0002000, 0x200, 6}};
  boot::aml::Bytes full = boot::dsdt_aml(devs);
  for (size_t len = 0; len < full.size(); ++len) {
    boot::aml::Bytes cut(full.begin(), full.begin() + long(len));
    cut.shrink_to_fit();  // ASan sees a read past the end
    int bad = 0;
    auto found = scan(cut, &bad);
    EXPECT_LE(found.size(), 2u);
    for (const auto& d : found) EXPECT_TRUE(d.base == 0xd0001000 || d.base == 0xd0002000) << len;
  }
}

// Any byte of the table changed to a value that means something to the scan (PkgLength forms with
// 0-3 follow bytes, resource item tags, opcodes) yields at most the devices there are, and the scan
// stays inside the table (ASan checks every read here).
TEST(VirtioDsdtScan, CorruptedBytesNeverOverread) {
  std::vector<VirtioMmioDesc> devs{{0xd0001000, 0x200, 5}, {0xd0002000, 0x200, 6}};
  const boot::aml::Bytes full = boot::dsdt_aml(devs);
  const uint8_t values[] = {0x00, 0x01, 0x07, 0x3f, 0x40, 0x7f, 0x80, 0x82, 0x86, 0x89, 0xbf, 0xc0, 0xff};
  for (size_t i = 0; i < full.size(); ++i)
    for (uint8_t v : values) {
      boot::aml::Bytes a = full;
      a[i] = v;
      size_t device_ops = 0;  // each DeviceOp yields one device or one bad one at most
      for (size_t j = 0; j + 1 < a.size(); ++j) device_ops += a[j] == 0x5b && a[j + 1] == 0x82;
      int bad = 0;
      auto found = scan(a, &bad);
      EXPECT_LE(found.size() + size_t(bad), device_ops) << i << " " << int(v);
    }
}

// A device whose _CRS lost its interrupt is counted as bad, not taken with a GSI of 0.
TEST(VirtioDsdtScan, DeviceWithoutInterruptIsBad) {
  std::vector<VirtioMmioDesc> devs{{0xd0001000, 0x200, 5}};
  boot::aml::Bytes a = boot::dsdt_aml(devs);
  bool changed = false;
  for (size_t i = 0; i + 1 < a.size(); ++i)
    if (a[i] == 0x89 && a[i + 1] == 0x06) {  // Extended Interrupt -> an unknown large item of the same size
      a[i] = 0x8f;
      changed = true;
    }
  ASSERT_TRUE(changed);
  int bad = 0;
  EXPECT_TRUE(scan(a, &bad).empty());
  EXPECT_EQ(bad, 1);
}

}  // namespace
}  // namespace evmm
