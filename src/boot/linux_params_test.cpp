// boot_params as fill_loader_fields writes it: the 64-bit halves, the protocol-gated RSDP, vga= and
// the limits of the zero page.
#include "boot/linux_params.h"

#include <gtest/gtest.h>

#include "testing/boot_test_images.h"

namespace evmm::boot {
namespace {

using namespace test_images;

TEST(LinuxParams, AddressesAbove4GiBGoToTheExtFields) {
  boot_params bp = params_for_vmlinux();
  LinuxLoaderFields f;
  f.cmdline_addr = 0x1'2345'6000;
  f.initrd_addr = 0x2'0000'1000;
  f.initrd_size = 0x1'0000'0010;
  ASSERT_TRUE(fill_loader_fields(bp, f));
  EXPECT_EQ(bp.hdr.cmd_line_ptr, 0x23456000u);
  EXPECT_EQ(bp.ext_cmd_line_ptr, 1u);
  EXPECT_EQ(bp.hdr.ramdisk_image, 0x1000u);
  EXPECT_EQ(bp.ext_ramdisk_image, 2u);
  EXPECT_EQ(bp.hdr.ramdisk_size, 0x10u);
  EXPECT_EQ(bp.ext_ramdisk_size, 1u);
}

TEST(LinuxParams, RsdpOnlyForProtocol214AndLater) {
  boot_params bp = params_for_vmlinux();
  bp.hdr.version = 0x020d;
  ASSERT_TRUE(fill_loader_fields(bp, {}));
  EXPECT_EQ(bp.acpi_rsdp_addr, 0u);
  bp.hdr.version = 0x020e;
  ASSERT_TRUE(fill_loader_fields(bp, {}));
  EXPECT_EQ(bp.acpi_rsdp_addr, kRsdpAddress);
}

TEST(LinuxParams, LoadflagsKeepsNothingTheKernelOrAnOldLoaderSet) {
  boot_params bp = params_for_vmlinux();
  bp.hdr.loadflags = 0xff;
  ASSERT_TRUE(fill_loader_fields(bp, {}));
  EXPECT_EQ(bp.hdr.loadflags, LOADED_HIGH | CAN_USE_HEAP | 0x1c);  // bits 2-4 are not the loader's to clear
  EXPECT_EQ(bp.hdr.loadflags & (KASLR_FLAG | QUIET_FLAG | KEEP_SEGMENTS), 0);
}

TEST(LinuxParams, LimitsOfTheZeroPage) {
  boot_params bp = params_for_vmlinux();
  bp.hdr.cmdline_size = 5;
  LinuxLoaderFields f;
  f.cmdline = "12345";
  EXPECT_TRUE(fill_loader_fields(bp, f));
  f.cmdline = "123456";
  EXPECT_TRUE(fails_with(fill_loader_fields(bp, f), E2BIG, "at most 5 (cmdline_size)"));
  f.cmdline = "";
  f.e820.assign(129, E820Entry{0, 4096, e820::kRam});
  EXPECT_TRUE(fails_with(fill_loader_fields(bp, f), E2BIG, "129 entries; boot_params holds 128"));
}

TEST(LinuxParams, VidModeFromVga) {
  EXPECT_EQ(vid_mode_from_cmdline(""), 0xffff);
  EXPECT_EQ(vid_mode_from_cmdline("console=ttyS0"), 0xffff);
  EXPECT_EQ(vid_mode_from_cmdline("vga=ext"), 0xfffe);
  EXPECT_EQ(vid_mode_from_cmdline("a vga=ask b"), 0xfffd);
  EXPECT_EQ(vid_mode_from_cmdline("vga=0x317"), 0x317);
  EXPECT_EQ(vid_mode_from_cmdline("vga=791"), 791);
  EXPECT_EQ(vid_mode_from_cmdline("vga=ext vga=normal"), 0xffff);  // the last one counts
  EXPECT_EQ(vid_mode_from_cmdline("vga=bogus"), 0xffff);
  EXPECT_EQ(vid_mode_from_cmdline("vga=0x10000"), 0xffff);
  EXPECT_EQ(vid_mode_from_cmdline("xvga=ext"), 0xffff);
  boot_params bp = params_for_vmlinux();
  LinuxLoaderFields f;
  f.cmdline = "vga=ext";
  ASSERT_TRUE(fill_loader_fields(bp, f));
  EXPECT_EQ(bp.hdr.vid_mode, 0xfffe);
}

}  // namespace
}  // namespace evmm::boot
