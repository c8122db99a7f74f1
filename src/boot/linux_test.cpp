// The Linux 64-bit boot protocol loader (boot/linux.h) on synthetic bzImages whose payload is a tiny
// ELF compressed in the test: where everything lands, every boot_params field evmm sets, and each
// refusal. The same checks against Debian's real kernel: tests/linux_bzimage_test.cpp.
#include "boot/linux.h"

#include <gtest/gtest.h>

#include "boot/linux_params.h"
#include "testing/boot_test_images.h"
#include "testing/bzimage_builder.h"

namespace evmm::boot {
namespace {

using namespace test_images;
using layout::MiB;

constexpr uint64_t kText = 0x1000000, kData = 0x1200000;

Bytes tiny_vmlinux(bool is64 = true) {
  ElfSpec s;
  s.is64 = is64;
  s.entry = kText;
  s.segments = {{.paddr = kText, .data = pattern(5000, 1), .memsz = 0x3000},
                {.paddr = kData, .data = pattern(3000, 2)}};
  return build_elf(s);
}

Bytes tiny_bzimage(Compression c = Compression::Zstd) { return build_bzimage(compress(c, tiny_vmlinux())); }

Result<BootEntry> load_linux(const GuestMemory& mem, const Bytes& image, std::string cmdline = "console=ttyS0",
                             std::vector<Module> modules = {}, Decompress d = Decompress::Host,
                             BootProtocol p = BootProtocol::Auto) {
  BootConfig cfg;
  cfg.image = image;
  cfg.cmdline = std::move(cmdline);
  cfg.modules = std::move(modules);
  cfg.decompress = d;
  cfg.protocol = p;
  return load_image(mem, cfg);
}

boot_params read_params(const GuestMemory& mem, uint64_t at) {
  auto bp = mem.read_obj<boot_params>(GuestAddress(at));
  EXPECT_TRUE(bp);
  return bp ? *bp : boot_params{};
}

// The fields fill_loader_fields writes, for a kernel given `cmdline`, and no initrd.
void expect_loader_fields(const GuestMemory& mem, const boot_params& bp, const std::string& cmdline) {
  EXPECT_EQ(bp.hdr.type_of_loader, 0xff);
  EXPECT_EQ(bp.hdr.loadflags, LOADED_HIGH | CAN_USE_HEAP);
  EXPECT_EQ(bp.hdr.heap_end_ptr, 0xfe00);
  EXPECT_EQ(bp.hdr.vid_mode, 0xffff);
  EXPECT_EQ(bp.ext_cmd_line_ptr, 0u);
  EXPECT_EQ(read_cstring(mem, bp.hdr.cmd_line_ptr), cmdline);
  EXPECT_EQ(bp.hdr.hardware_subarch, 0u);
  EXPECT_EQ(bp.acpi_rsdp_addr, kRsdpAddress);
  EXPECT_EQ(bp.sentinel, 0);
  auto e820 = build_e820(mem);
  ASSERT_EQ(bp.e820_entries, e820.size());
  for (size_t i = 0; i < e820.size(); ++i) {
    EXPECT_EQ(bp.e820_table[i].addr, e820[i].addr) << i;
    EXPECT_EQ(bp.e820_table[i].size, e820[i].size) << i;
    EXPECT_EQ(bp.e820_table[i].type, e820[i].type) << i;
  }
}

class LinuxHostDecompress : public ::testing::TestWithParam<Compression> {};

TEST_P(LinuxHostDecompress, LoadsThePayloadsSegmentsAndFillsBootParams) {
  auto mem = make_memory();
  Bytes img = tiny_bzimage(GetParam());
  auto entry = load_linux(mem, img);
  ASSERT_TRUE(entry) << entry.error().message();
  EXPECT_EQ(entry->format, ImageFormat::Linux);
  EXPECT_EQ(entry->mode, EntryMode::Long64);
  EXPECT_EQ(entry->rip, kText);  // startup_64 of the vmlinux, physical
  EXPECT_EQ(entry->rsi, layout::kZeroPage);
  EXPECT_EQ(entry->page_tables, layout::kPml4);
  Bytes text = pattern(5000, 1);
  text.resize(0x3000, 0);
  EXPECT_EQ(read_guest(mem, kText, 0x3000), text);
  EXPECT_EQ(read_guest(mem, kData, 3000), pattern(3000, 2));

  boot_params bp = read_params(mem, entry->rsi);
  // The setup header is the image's, but for the fields a loader writes.
  boot_params want{};
  std::memcpy(reinterpret_cast<uint8_t*>(&want) + 0x1f1, img.data() + 0x1f1, 0x26c - 0x1f1);
  EXPECT_EQ(bp.hdr.version, want.hdr.version);
  EXPECT_EQ(bp.hdr.code32_start, want.hdr.code32_start);
  EXPECT_EQ(bp.hdr.init_size, want.hdr.init_size);
  EXPECT_EQ(bp.hdr.payload_length, want.hdr.payload_length);
  EXPECT_EQ(bp.hdr.xloadflags, want.hdr.xloadflags);
  EXPECT_EQ(bp.hdr.header, kHdrSMagic);
  EXPECT_EQ(bp.hdr.ramdisk_image, 0u);
  EXPECT_EQ(bp.hdr.ramdisk_size, 0u);
  expect_loader_fields(mem, bp, "console=ttyS0");
  // Nothing outside the header came from the image: the bytes after it are zero.
  Bytes after = read_guest(mem, entry->rsi + 0x26c, 0x290 - 0x26c);
  EXPECT_EQ(after, Bytes(0x290 - 0x26c, 0));
}

INSTANTIATE_TEST_SUITE_P(All, LinuxHostDecompress,
                         ::testing::Values(Compression::Gzip, Compression::Bzip2, Compression::Lzma, Compression::Xz,
                                           Compression::Lz4, Compression::Zstd),
                         [](const auto& info) { return std::string(to_string(info.param)); });

TEST(LinuxLoad, InitrdGoesHighBelowInitrdAddrMaxPageAlignedAboveTheKernel) {
  auto mem = make_memory(64 * MiB);
  Bytes initrd = pattern(10000, 7);
  auto entry = load_linux(mem, tiny_bzimage(), "", {{initrd, "initrd"}});
  ASSERT_TRUE(entry) << entry.error().message();
  boot_params bp = read_params(mem, entry->rsi);
  EXPECT_EQ(bp.hdr.ramdisk_size, initrd.size());
  EXPECT_EQ(bp.hdr.ramdisk_image % 4096, 0u);
  EXPECT_EQ(bp.hdr.ramdisk_image, (64 * MiB - initrd.size()) & ~0xfffull);  // as high as RAM allows
  EXPECT_EQ(bp.ext_ramdisk_image, 0u);
  EXPECT_EQ(bp.ext_ramdisk_size, 0u);
  EXPECT_EQ(read_guest(mem, bp.hdr.ramdisk_image, initrd.size()), initrd);

  // initrd_addr_max is the highest byte it may occupy.
  Bytes img = tiny_bzimage();
  bz_set<uint32_t>(img, BZ_HDR_OFF(initrd_addr_max), 0x1ffffff);
  auto mem2 = make_memory(64 * MiB);
  entry = load_linux(mem2, img, "", {{initrd, "initrd"}});
  ASSERT_TRUE(entry) << entry.error().message();
  bp = read_params(mem2, entry->rsi);
  EXPECT_LE(bp.hdr.ramdisk_image + initrd.size(), 0x2000000u);
  EXPECT_GE(bp.hdr.ramdisk_image, kText + kTestInitSize);  // past the kernel's init_size
  EXPECT_EQ(bp.hdr.ramdisk_image % 4096, 0u);

  // No room between the kernel and initrd_addr_max.
  bz_set<uint32_t>(img, BZ_HDR_OFF(initrd_addr_max), kText + kTestInitSize + 4096);
  auto mem3 = make_memory(64 * MiB);
  EXPECT_TRUE(fails_with(load_linux(mem3, img, "", {{initrd, "initrd"}}), EFAULT, "the initrd (10000 bytes) does not fit"));
}

TEST(LinuxLoad, GuestDecompressionLoadsTheProtectedModeKernelAtPrefAddress) {
  auto mem = make_memory();
  Bytes img = tiny_bzimage();
  auto entry = load_linux(mem, img, "quiet", {}, Decompress::Guest);
  ASSERT_TRUE(entry) << entry.error().message();
  EXPECT_EQ(entry->mode, EntryMode::Long64);
  EXPECT_EQ(entry->rip, kTestPrefAddress + 0x200);
  Bytes kernel(img.begin() + kTestKernelOffset, img.end());
  EXPECT_EQ(read_guest(mem, kTestPrefAddress, kernel.size()), kernel);
  boot_params bp = read_params(mem, entry->rsi);
  EXPECT_EQ(bp.hdr.code32_start, kTestPrefAddress);
  expect_loader_fields(mem, bp, "quiet");
}

TEST(LinuxLoad, GuestDecompressionOfANonRelocatableKernel) {
  Bytes img = tiny_bzimage();
  bz_set<uint8_t>(img, BZ_HDR_OFF(relocatable_kernel), 0);
  auto mem = make_memory();
  auto entry = load_linux(mem, img, "", {}, Decompress::Guest);
  ASSERT_TRUE(entry) << entry.error().message();
  EXPECT_EQ(entry->rip, 0x100000u + 0x200);  // loaded at 1 MiB; it moves itself to pref_address
  // It must fit at pref_address with init_size.
  bz_set<uint64_t>(img, BZ_HDR_OFF(pref_address), 62 * MiB);
  auto mem2 = make_memory();
  EXPECT_TRUE(fails_with(load_linux(mem2, img, "", {}, Decompress::Guest), EFAULT, "non-relocatable kernel"));
}

TEST(LinuxLoad, InitSizeBeyondRamIsRefused) {
  Bytes img = tiny_bzimage();
  bz_set<uint32_t>(img, BZ_HDR_OFF(init_size), 60 * MiB);
  auto mem = make_memory();
  EXPECT_TRUE(fails_with(load_linux(mem, img), EFAULT, "init_size from its link-time address"));
  auto mem2 = make_memory();
  EXPECT_TRUE(fails_with(load_linux(mem2, img, "", {}, Decompress::Guest), EFAULT, "init_size from its load address"));
}

TEST(LinuxLoad, RefusalsOfTheLoader) {
  Bytes no64 = tiny_bzimage();
  bz_set<uint16_t>(no64, BZ_HDR_OFF(xloadflags), 0);
  auto mem = make_memory();
  EXPECT_TRUE(fails_with(load_linux(mem, no64), EINVAL, "XLF_KERNEL_64 is clear"));
  EXPECT_TRUE(fails_with(load_linux(mem, tiny_bzimage(), "", {{Bytes(10), "a"}, {Bytes(10), "b"}}), EINVAL,
                         "takes one initrd; 2 modules"));
  EXPECT_TRUE(fails_with(load_linux(mem, tiny_bzimage(), std::string(0x800, 'x')), E2BIG, "at most 2047 (cmdline_size)"));
  EXPECT_TRUE(fails_with(load_linux(mem, build_bzimage(compress(Compression::Gzip, pattern(4000, 1)))), EINVAL,
                         "not a vmlinux ELF"));
  EXPECT_TRUE(fails_with(load_linux(mem, build_bzimage(compress(Compression::Gzip, tiny_vmlinux(false)))), EINVAL,
                         "a 32-bit ELF"));
  EXPECT_TRUE(fails_with(load_linux(mem, build_bzimage(pattern(4000, 1))), ENOEXEC, "no format evmm can decompress"));
  EXPECT_TRUE(fails_with(load_linux(mem, build_bzimage({})), EINVAL, "no payload"));
  Bytes elf = tiny_vmlinux();
  set<uint64_t>(elf, 24, kData + 0x10000);  // e_entry outside both segments
  EXPECT_TRUE(fails_with(load_linux(mem, elf, "", {}, Decompress::Host, BootProtocol::Linux), EINVAL,
                         "entry point 0x1210000 is not inside any loaded segment"));
  // The decompressed size is capped by guest RAM.
  Bytes big = compress(Compression::Zstd, Bytes(80 * MiB, 0));
  EXPECT_TRUE(fails_with(load_linux(mem, build_bzimage(big)), E2BIG, "more than"));
}

TEST(LinuxLoad, VmlinuxThroughThe64BitProtocol) {
  auto mem = make_memory();
  Bytes elf = tiny_vmlinux();
  auto entry = load_linux(mem, elf, "root=/dev/vda", {{pattern(5000, 3), "initrd"}}, Decompress::Host, BootProtocol::Linux);
  ASSERT_TRUE(entry) << entry.error().message();
  EXPECT_EQ(entry->format, ImageFormat::Linux);
  EXPECT_EQ(entry->mode, EntryMode::Long64);
  EXPECT_EQ(entry->rip, kText);
  EXPECT_EQ(read_guest(mem, kData, 3000), pattern(3000, 2));
  boot_params bp = read_params(mem, entry->rsi);
  EXPECT_EQ(bp.hdr.boot_flag, 0xAA55);
  EXPECT_EQ(bp.hdr.header, kHdrSMagic);
  EXPECT_EQ(bp.hdr.version, kVmlinuxProtocol);
  EXPECT_EQ(bp.hdr.kernel_alignment, kVmlinuxAlignment);
  EXPECT_EQ(bp.hdr.initrd_addr_max, kVmlinuxInitrdAddrMax);
  EXPECT_EQ(bp.hdr.cmdline_size, layout::kCmdlineMax - 1);
  EXPECT_EQ(bp.hdr.setup_sects, 0);
  EXPECT_GE(bp.hdr.ramdisk_image, kData + 3000);
  EXPECT_EQ(bp.hdr.ramdisk_size, 5000u);
  EXPECT_EQ(read_guest(mem, bp.hdr.ramdisk_image, 5000), pattern(5000, 3));
  bp.hdr.ramdisk_image = bp.hdr.ramdisk_size = 0;
  expect_loader_fields(mem, bp, "root=/dev/vda");
}

TEST(LinuxLoad, PlaceInitrd) {
  auto mem = make_memory(64 * MiB);
  EXPECT_EQ(*place_initrd(mem, 4096, UINT32_MAX, 2 * MiB), 64 * MiB - 4096);
  EXPECT_EQ(*place_initrd(mem, 100, 0x2ffffff, 2 * MiB), 0x3000000u - 4096);
  EXPECT_EQ(*place_initrd(mem, 8192, 0x2000fff, 2 * MiB), 0x2000000u - 4096);
  EXPECT_EQ(*place_initrd(mem, 8192, 0x2000fff, 0x1fff000), 0x1fff000u);  // exactly at the floor
  EXPECT_TRUE(fails_with(place_initrd(mem, 64 * MiB, UINT32_MAX, 1 * MiB), EFAULT, "does not fit"));
  EXPECT_TRUE(fails_with(place_initrd(mem, 8192, 0x2000fff, 0x1fff001), EFAULT, "does not fit"));
}

// --boot and --decompress as load_image takes them (BootConfig::protocol, ::decompress).
TEST(LinuxLoad, ProtocolChoices) {
  auto mem = make_memory();
  EXPECT_TRUE(fails_with(load_linux(mem, tiny_bzimage(), "", {}, Decompress::Host, BootProtocol::Pvh), EINVAL,
                         "a Linux bzImage has no PVH entry"));
  EXPECT_TRUE(fails_with(load_linux(mem, tiny_vmlinux(), "", {}, Decompress::Guest), EINVAL, "needs a Linux bzImage"));
  EXPECT_TRUE(fails_with(load_linux(mem, tiny_vmlinux(), "", {}, Decompress::Host, BootProtocol::Pvh), EINVAL,
                         "no PVH entry note"));
  EXPECT_TRUE(fails_with(load_linux(mem, pattern(4096, 1), "", {}, Decompress::Host, BootProtocol::Linux), EINVAL,
                         "--boot linux needs a bzImage or an ELF vmlinux"));
  // A vmlinux with a PVH note: PVH unless told otherwise.
  ElfSpec s;
  s.is64 = true;
  s.entry = kText;
  s.segments = {{.paddr = kText, .data = pattern(5000, 1)}};
  s.notes = {{"Xen", 18, {0x00, 0x00, 0x00, 0x01}}};  // XEN_ELFNOTE_PHYS32_ENTRY = 0x1000000
  Bytes pvh = build_elf(s);
  auto auto_entry = load_linux(mem, pvh);
  ASSERT_TRUE(auto_entry) << auto_entry.error().message();
  EXPECT_EQ(auto_entry->format, ImageFormat::Pvh);
  EXPECT_EQ(auto_entry->mode, EntryMode::Protected32);
  auto mem2 = make_memory();
  auto linux_entry = load_linux(mem2, pvh, "", {}, Decompress::Host, BootProtocol::Linux);
  ASSERT_TRUE(linux_entry) << linux_entry.error().message();
  EXPECT_EQ(linux_entry->format, ImageFormat::Linux);
  EXPECT_EQ(linux_entry->mode, EntryMode::Long64);
  EXPECT_EQ(linux_entry->rip, kText);
}

}  // namespace
}  // namespace evmm::boot
