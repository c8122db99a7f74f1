// The small Linux guest (guests/linux/tiny.config) on evmm's virtio-mmio devices, with its own
// drivers (issue 14, "What Linux must show"): virtio-blk holding an ext4 root
// (scripts/rootfs.sh), virtio-net with a DHCP responder on the other end of its Unix datagram
// socket, virtio-console as hvc0, and virtio-rng. hvc0 writes where the serial port does (here a
// file), beside ttyS0 (see expect_boot_on_virtio). User space cannot run on hosts that emulate CPL3
// entry into the kernel (DESIGN.md, "The host we run on"), so each boot ends at "Run /sbin/init".
#include <gtest/gtest.h>
#include <stdlib.h>
#include <unistd.h>

#include <regex>
#include <sstream>
#include <string>

#include "testing/dhcp_responder.h"
#include "tests/linux_boot.h"

namespace evmm::testing {
namespace {

constexpr const char* kBanner = "Linux version";
constexpr const char* kRootMounted = "VFS: Mounted root (ext4 filesystem) readonly";
constexpr const char* kRunInit = "Run /sbin/init as init process";

// Each virtio device's interrupts, from evmm's --stats line (" virtio-NAME:interrupts=N,...").
std::map<std::string, unsigned> virtio_interrupts(const std::string& err) {
  std::map<std::string, unsigned> out;
  static const std::regex re(" virtio-([a-z0-9]+):interrupts=([0-9]+)");
  for (std::sregex_iterator i(err.begin(), err.end(), re), end; i != end; ++i) out[(*i)[1]] = unsigned(std::stoul((*i)[2]));
  return out;
}

// Lines of the log in which Linux's ACPI interpreter complains about evmm's tables. Three lines are
// how ACPICA finds that a platform has no global lock, which evmm has not (no firmware shares the
// ACPI hardware with the OS): GBL_EN does not stick, and it logs "Could not enable GlobalLock event",
// "Could not enable fixed event - GlobalLock" and "No response from Global Lock hardware, disabling
// lock" (evglock.c), then runs on without one. A GBL_EN that sticks with no lock behind it hung
// Linux's boot right there (tried on 2026-12-07).
std::string acpi_complaints(const std::string& log) {
  std::string out;
  std::istringstream in(log);
  for (std::string line; std::getline(in, line);) {
    if (has(line, "GlobalLock") || has(line, "Global Lock hardware")) continue;
    if (has(line, "ACPI Error") || has(line, "ACPI BIOS Error") || has(line, "ACPI Warning") || has(line, "ACPI BIOS Warning"))
      out += line + "\n";
  }
  return out;
}

class LinuxVirtioLong : public ::testing::Test {
 protected:
  void SetUp() override {
    REQUIRE_KVM();
    auto k = built_image("guest_kernel.sh", EVMM_GUEST_KERNEL_DIR);
    ASSERT_EQ(k.status, 0) << k.err;
    kernel_ = k.path;
    bzimage_ = kernel_.substr(0, kernel_.rfind('/')) + "/arch/x86/boot/bzImage";  // scripts/guest_kernel.sh
    auto root = built_image("rootfs.sh", EVMM_GUEST_ROOTFS_DIR);
    ASSERT_EQ(root.status, 0) << root.err;
    rootfs_ = root.path;
    dir_ = "/tmp/evmm-linux-net-XXXXXX";
    ASSERT_TRUE(::mkdtemp(dir_.data()));
    ASSERT_EQ(dhcp_.start(dir_ + "/dhcp", lease_), "");
  }
  void TearDown() override {
    dhcp_.stop();
    if (dir_.find("XXXXXX") == std::string::npos) ::rmdir(dir_.c_str());
  }

  // Boots on 2 vCPUs with every kind of evmm virtio device until "Run /sbin/init".
  LinuxBoot boot(const std::string& image, std::vector<std::string> more = {}) {
    std::vector<std::string> extra{"--disk", "path=" + rootfs_ + ",readonly", "--net", "socket=" + dir_ + "/dhcp",
                                   "--console", "virtio", "--rng"};
    extra.insert(extra.end(), more.begin(), more.end());
    LinuxBoot b = boot_linux({.image = image,
                              .cmdline = "console=ttyS0 console=hvc0 root=/dev/vda ro rootfstype=ext4 ip=dhcp",
                              .cpus = 2,
                              .until = kRunInit,
                              .guard = std::chrono::minutes(20),
                              .extra = extra,
                              .marks = {kBanner, kRootMounted, kRunInit}});
    dhcp_.stop();
    for (const char* m : {kBanner, kRootMounted, kRunInit})
      if (b.at.count(m)) RecordProperty(m, std::to_string(b.at[m]));
    std::printf("evmm-linux: %s at %.1f s, root mounted at %.1f s, init at %.1f s (%.1f s in all)\n", kBanner,
                b.at.count(kBanner) ? b.at[kBanner] : -1.0, b.at.count(kRootMounted) ? b.at[kRootMounted] : -1.0,
                b.at.count(kRunInit) ? b.at[kRunInit] : -1.0, b.seconds);
    return b;
  }

  // What every boot must show: the devices probed by Linux's drivers, the root mounted read-only
  // from virtio-blk, an address from DHCP, and init run. Two consoles, both written to the serial
  // file: ttyS0 carries the whole log, and hvc0 (the last console=, so /dev/console) everything from
  // the moment virtio-console's port exists. Linux registers hvc0 at console_initcall, long before
  // the driver probes, and drops what it prints there until then, so console=hvc0 alone loses the
  // banner and the early lines (seen here: the log began at "random: crng init done").
  void expect_boot_on_virtio(const LinuxBoot& b) {
    EXPECT_FALSE(has(b.r.err, "cannot emulate")) << b.r.err;
    ASSERT_TRUE(b.reached) << "after " << b.seconds << " s:\n" << tail(b.serial) << b.r.err;
    EXPECT_TRUE(has(b.serial, kBanner)) << tail(b.serial);
    EXPECT_TRUE(has(b.serial, "smp: Brought up 1 node, 2 CPUs")) << tail(b.serial);
    // The later log through both consoles: each line twice, and the bytes counted by virtio-console.
    EXPECT_EQ(occurrences(b.serial, kRootMounted), 2u) << b.serial;
    EXPECT_GE(stats_count(b.r.err, "console:tx_bytes=([0-9]+)"), 200u) << b.r.err;
    EXPECT_TRUE(std::regex_search(b.serial, std::regex("virtio_blk virtio[0-9]+: \\[vda\\]"))) << b.serial;
    EXPECT_TRUE(has(b.serial, kRootMounted)) << b.serial;
    // ip=dhcp: the kernel's DHCP client on eth0 took the address our responder offered.
    EXPECT_TRUE(has(b.serial, "IP-Config: Complete:")) << b.serial;
    EXPECT_TRUE(has(b.serial, "device=eth0")) << b.serial;
    EXPECT_TRUE(has(b.serial, "ipaddr=10.0.2.15, mask=255.255.255.0, gw=10.0.2.2")) << b.serial;
    EXPECT_GE(dhcp_.stats().offers, 1u);
    EXPECT_GE(dhcp_.stats().acks, 1u);
    EXPECT_EQ(dhcp_.stats().malformed, 0u);
    EXPECT_EQ(acpi_complaints(b.serial), "");
    // Each device was set up by its driver; blk, net and rng served it (hw_random read virtio-rng).
    auto irqs = virtio_interrupts(b.r.err);
    EXPECT_EQ(irqs.size(), 4u) << b.r.err;
    for (std::string used : {"blk", "net", "rng"}) {  // "blk" or "blk0", "net0"...
      auto it = irqs.lower_bound(used);
      ASSERT_TRUE(it != irqs.end() && it->first.rfind(used, 0) == 0) << "no virtio-" << used << ":\n" << b.r.err;
      EXPECT_GT(it->second, 0u) << "virtio-" << it->first << " was never used:\n" << b.r.err;
    }
  }

  DhcpLease lease_{.client = {10, 0, 2, 15}, .server = {10, 0, 2, 2}};
  DhcpServer dhcp_;
  std::string kernel_, bzimage_, rootfs_, dir_;
};

// Devices on the command line (virtio_mmio.device=, evmm's default); the vmlinux, through PVH.
TEST_F(LinuxVirtioLong, DriversProbeEveryDeviceAndInitRunsFromTheExt4Root) {
  LinuxBoot b = boot(kernel_);
  EXPECT_TRUE(has(b.serial, "virtio_mmio.device=")) << tail(b.serial);
  expect_boot_on_virtio(b);
}

// The same devices found only through the DSDT's LNRO0005 entries (ACPI enumeration); the same
// kernel as a bzImage, through the 64-bit boot protocol.
TEST_F(LinuxVirtioLong, AcpiEnumerationFindsTheDevicesWithoutTheCommandLine) {
  LinuxBoot b = boot(bzimage_, {"--no-virtio-cmdline"});
  EXPECT_FALSE(has(b.serial, "virtio_mmio.device=")) << tail(b.serial);
  expect_boot_on_virtio(b);
}

}  // namespace
}  // namespace evmm::testing
