// Multiboot v1: header discovery, a.out kludge and ELF loading, and the information structure.
#include "boot/multiboot.h"

#include <gtest/gtest.h>

#include "testing/boot_test_images.h"

namespace evmm {
namespace {

using namespace boot;
using namespace boot::test_images;
using layout::MiB;

constexpr uint32_t kBasicFlags = MultibootFlag::PageAlign | MultibootFlag::MemoryInfo;

// An ELF32 multiboot kernel: the header opens its text at 1 MiB, with 0x3000 bytes of bss after.
ElfSpec multiboot_elf(uint32_t flags = kBasicFlags) {
  ElfSpec s;
  s.entry = 0x100040;
  Bytes text = multiboot_header(flags);
  Bytes code = pattern(500, 6);
  text.insert(text.end(), code.begin(), code.end());
  s.segments = {{.paddr = 0x100000, .data = text, .memsz = 0x3000}, {.paddr = 0x104000, .data = pattern(100, 7)}};
  return s;
}

TEST(MultibootElf, EntryStateAndInformationStructure) {
  auto mem = make_memory();
  Bytes image = build_elf(multiboot_elf());
  Bytes initrd = pattern(10000, 8), second = pattern(3000, 9);
  auto entry = load(mem, image, "console=ttyS0 loglevel=8", {{initrd, "initrd args"}, {second, "second"}});
  ASSERT_TRUE(entry) << entry.error().message();
  EXPECT_EQ(entry->format, ImageFormat::Multiboot);
  EXPECT_EQ(entry->mode, EntryMode::Protected32);
  EXPECT_EQ(entry->rip, 0x100040u);
  EXPECT_EQ(entry->rax, 0x2BADB002u);
  EXPECT_EQ(entry->rbx, layout::kZeroPage);

  auto info = *mem.read_obj<MultibootInfo>(GuestAddress(entry->rbx));
  EXPECT_EQ(info.flags, (1u << 0) | (1u << 2) | (1u << 3) | (1u << 6) | (1u << 9));
  EXPECT_EQ(info.mem_lower, 639u);
  EXPECT_EQ(info.mem_upper, (64 * MiB - MiB) / 1024);
  EXPECT_EQ(read_cstring(mem, info.cmdline), "console=ttyS0 loglevel=8");
  EXPECT_EQ(read_cstring(mem, info.boot_loader_name), "evmm");

  ASSERT_EQ(info.mods_count, 2u);
  auto m0 = *mem.read_obj<MultibootModule>(GuestAddress(info.mods_addr));
  auto m1 = *mem.read_obj<MultibootModule>(GuestAddress(info.mods_addr + sizeof(MultibootModule)));
  // The image ends at 0x104000 + 100: modules start at the next page.
  EXPECT_EQ(m0.mod_start, 0x105000u);
  EXPECT_EQ(m0.mod_end - m0.mod_start, initrd.size());
  EXPECT_EQ(m1.mod_start, 0x105000u + 3 * 4096);  // 10000 bytes round up to three pages
  EXPECT_EQ(m1.mod_end - m1.mod_start, second.size());
  EXPECT_EQ(read_guest(mem, m0.mod_start, initrd.size()), initrd);
  EXPECT_EQ(read_guest(mem, m1.mod_start, second.size()), second);
  EXPECT_EQ(read_cstring(mem, m0.string), "initrd args");
  EXPECT_EQ(read_cstring(mem, m1.string), "second");

  // The memory map is build_e820's, entry for entry, each with size = 20.
  auto e820 = build_e820(mem);
  ASSERT_EQ(info.mmap_length, e820.size() * sizeof(MultibootMmapEntry));
  for (size_t i = 0; i < e820.size(); ++i) {
    auto e = *mem.read_obj<MultibootMmapEntry>(GuestAddress(info.mmap_addr + i * sizeof(MultibootMmapEntry)));
    EXPECT_EQ(e.size, 20u);
    EXPECT_EQ(uint64_t{e.addr}, e820[i].addr);  // copies: packed fields may be misaligned
    EXPECT_EQ(uint64_t{e.len}, e820[i].size);
    EXPECT_EQ(e.type, e820[i].type);
  }
}

TEST(MultibootElf, ImageBytesLandAndBssIsZeroed) {
  auto mem = make_memory();
  ASSERT_TRUE(mem.fill(GuestAddress(0x100000), 0xcc, 0x5000));
  ElfSpec spec = multiboot_elf();
  ASSERT_TRUE(load(mem, build_elf(spec)));
  EXPECT_EQ(read_guest(mem, 0x100000, spec.segments[0].data.size()), spec.segments[0].data);
  size_t filesz = spec.segments[0].data.size();
  EXPECT_EQ(read_guest(mem, 0x100000 + filesz, 0x3000 - filesz), Bytes(0x3000 - filesz, 0));
  EXPECT_EQ(read_guest(mem, 0x104000, 100), spec.segments[1].data);
}

TEST(MultibootElf, WithoutModulesOrCmdline) {
  auto mem = make_memory();
  auto entry = load(mem, build_elf(multiboot_elf()));
  ASSERT_TRUE(entry) << entry.error().message();
  auto info = *mem.read_obj<MultibootInfo>(GuestAddress(layout::kZeroPage));
  EXPECT_EQ(info.mods_count, 0u);
  EXPECT_EQ(read_cstring(mem, info.cmdline), "");
}

TEST(MultibootElf, VideoModeAndOptionalFlagsAreAccepted) {
  auto mem = make_memory();
  auto entry = load(mem, build_elf(multiboot_elf(kBasicFlags | MultibootFlag::VideoMode | (1u << 20))));
  ASSERT_TRUE(entry) << entry.error().message();
  EXPECT_EQ(entry->format, ImageFormat::Multiboot);
}

TEST(MultibootElf, BrokenElfHeadersAreReported) {
  auto mem = make_memory();
  Bytes image = build_elf(multiboot_elf());
  set<uint16_t>(image, offsetof(Elf32_Ehdr, e_phentsize), 7);
  EXPECT_TRUE(fails_with(load(mem, image), EINVAL, "e_phentsize is 7"));
}

TEST(MultibootKludge, LoadsByAddressFields) {
  auto mem = make_memory();
  ASSERT_TRUE(mem.fill(GuestAddress(0x200000), 0xcc, 0x3000));
  auto k = kludge_image(0x200000, 64, 4000, 0x1000);
  auto entry = load(mem, k.bytes);
  ASSERT_TRUE(entry) << entry.error().message();
  EXPECT_EQ(entry->format, ImageFormat::Multiboot);
  EXPECT_EQ(entry->rip, k.fields.entry_addr);
  EXPECT_EQ(entry->rax, 0x2BADB002u);
  EXPECT_EQ(read_guest(mem, 0x200000, 4000), k.bytes);  // load_end_addr 0: the whole file
  EXPECT_EQ(read_guest(mem, 0x200000 + 4000, 0x1000), Bytes(0x1000, 0));
  EXPECT_EQ(read_guest(mem, 0x200000 + 4000 + 0x1000, 4), Bytes(4, 0xcc));
}

TEST(MultibootKludge, HeaderOffsetFixesTheFileOffsetOfLoadAddr) {
  auto mem = make_memory();
  // The header is at file offset 0x100 but only 0x80 bytes above load_addr: loading starts at
  // file offset 0x80, and load_end_addr stops it before the end of the file.
  Bytes image = pattern(0x1000, 10);
  KludgeFields k{.header_addr = 0x300080, .load_addr = 0x300000, .load_end_addr = 0x300800, .bss_end_addr = 0,
                 .entry_addr = 0x300100};
  Bytes h = multiboot_header(uint32_t(MultibootFlag::AoutKludge), k);
  std::copy(h.begin(), h.end(), image.begin() + 0x100);
  auto entry = load(mem, image);
  ASSERT_TRUE(entry) << entry.error().message();
  EXPECT_EQ(read_guest(mem, 0x300000, 0x800), Bytes(image.begin() + 0x80, image.begin() + 0x880));
  EXPECT_EQ(read_guest(mem, 0x300800, 16), Bytes(16, 0));
}

TEST(MultibootKludge, InformationStructureAsForElf) {
  auto mem = make_memory();
  Bytes initrd = pattern(777, 11);
  auto k = kludge_image(0x100000, 0, 4096, 0x800);
  auto entry = load(mem, k.bytes, "x", {{initrd, ""}});
  ASSERT_TRUE(entry) << entry.error().message();
  auto info = *mem.read_obj<MultibootInfo>(GuestAddress(layout::kZeroPage));
  auto m0 = *mem.read_obj<MultibootModule>(GuestAddress(info.mods_addr));
  EXPECT_EQ(m0.mod_start, 0x102000u);  // after the bss at 0x101000 + 0x800
  EXPECT_EQ(read_guest(mem, m0.mod_start, initrd.size()), initrd);
}

// Issue 13: real-mode test kernels are linked at 0x8000; nothing there collides with boot data.
TEST(MultibootLowMemory, KludgeAt0x8000Loads) {
  auto mem = make_memory();
  Bytes initrd = pattern(777, 12);
  auto k = kludge_image(0x8000, 0, 512);
  auto entry = load(mem, k.bytes, "low", {{initrd, "m"}});
  ASSERT_TRUE(entry) << entry.error().message();
  EXPECT_EQ(entry->rip, 0x8020u);
  EXPECT_EQ(read_guest(mem, 0x8000, 512), k.bytes);
  EXPECT_EQ(entry->rbx, layout::kZeroPage);  // still free, so unchanged
  auto info = *mem.read_obj<MultibootInfo>(GuestAddress(entry->rbx));
  auto m0 = *mem.read_obj<MultibootModule>(GuestAddress(info.mods_addr));
  EXPECT_EQ(m0.mod_start, layout::kHighRamStart);  // modules never go into low RAM
  EXPECT_EQ(read_guest(mem, m0.mod_start, initrd.size()), initrd);
}

// An image over every fixed place of boot data in low RAM: the boot data moves around it, some of
// it above 1 MiB, and the image's bytes survive everything the loader writes afterwards.
TEST(MultibootLowMemory, BootDataMovesAroundTheImage) {
  auto mem = make_memory();
  Bytes initrd = pattern(5000, 13);
  auto k = kludge_image(0x5000, 0, 0x1000, 0x60000);  // [0x5000, 0x66000), bss included
  auto entry = load(mem, k.bytes, "moved", {{initrd, "mod"}});
  ASSERT_TRUE(entry) << entry.error().message();
  EXPECT_EQ(read_guest(mem, 0x5000, 0x1000), k.bytes);
  EXPECT_EQ(read_guest(mem, 0x6000, 0x60000), Bytes(0x60000, 0));
  auto outside = [](uint64_t a, uint64_t n) { return a + n <= 0x5000 || a >= 0x66000; };
  EXPECT_TRUE(outside(entry->rbx, sizeof(MultibootInfo))) << std::hex << entry->rbx;
  EXPECT_TRUE(outside(entry->gdt, 32)) << std::hex << entry->gdt;
  EXPECT_EQ(entry->gdt, 0x1000u);   // the lowest free page, page 0 excluded
  EXPECT_EQ(entry->rbx, 0x2000u);
  auto info = *mem.read_obj<MultibootInfo>(GuestAddress(entry->rbx));
  EXPECT_TRUE(outside(info.cmdline, 6));
  EXPECT_EQ(read_guest(mem, info.cmdline, 6), Bytes({'m', 'o', 'v', 'e', 'd', 0}));
  EXPECT_TRUE(outside(info.mods_addr, sizeof(MultibootModule)));
  EXPECT_TRUE(outside(info.mmap_addr, info.mmap_length));
  auto m0 = *mem.read_obj<MultibootModule>(GuestAddress(info.mods_addr));
  EXPECT_GE(m0.mod_start, layout::kHighRamStart);
  EXPECT_GE(m0.mod_start, info.mmap_addr + info.mmap_length);  // after the scratch area moved above 1 MiB
  EXPECT_EQ(read_guest(mem, m0.mod_start, initrd.size()), initrd);
}

class MultibootErrors : public ::testing::Test {
 protected:
  GuestMemory mem_ = make_memory();
  KludgeImage k_ = kludge_image(0x200000, 64, 4000);
  Result<BootEntry> load_with(KludgeFields f) {
    set_kludge(k_.bytes, 64, f);
    return load(mem_, k_.bytes);
  }
};

TEST_F(MultibootErrors, BadChecksum) {
  set<uint32_t>(k_.bytes, 64 + 8, 0x12345678);
  EXPECT_TRUE(fails_with(load(mem_, k_.bytes), EINVAL, "multiboot header at offset 0x40 has a bad checksum"));
}

TEST_F(MultibootErrors, HeaderBeyondEightKiB) {
  auto k = kludge_image(0x200000, 8192, 9000);
  EXPECT_TRUE(fails_with(load(mem_, k.bytes), EINVAL, "offset 0x2000 lies beyond the first 8192 bytes"));
}

TEST_F(MultibootErrors, HeaderThatEndsPastTheFile) {
  Bytes image = pattern(100, 1);
  Bytes h = multiboot_header(uint32_t(MultibootFlag::AoutKludge));
  std::copy(h.begin(), h.begin() + 12, image.begin() + 88);  // 32 bytes needed, 12 left
  EXPECT_TRUE(fails_with(load(mem_, image), EINVAL, "needs 32 bytes, past the end of the file"));
}

TEST_F(MultibootErrors, UnknownRequiredFlag) {
  Bytes image = k_.bytes;
  uint32_t flags = uint32_t(MultibootFlag::AoutKludge) | (1u << 3);
  set<uint32_t>(image, 64 + 4, flags);
  set<uint32_t>(image, 64 + 8, uint32_t(-(kMultibootHeaderMagic + flags)));
  EXPECT_TRUE(fails_with(load(mem_, image), EINVAL, "requires flags 0x8, which evmm does not support"));
}

TEST_F(MultibootErrors, LoadEndBelowLoadAddr) {
  KludgeFields f = k_.fields;
  f.load_end_addr = f.load_addr - 0x10;
  EXPECT_TRUE(fails_with(load_with(f), EINVAL, "load_end_addr 0x1ffff0 is not above load_addr 0x200000"));
}

TEST_F(MultibootErrors, LoadRangePastTheFile) {
  KludgeFields f = k_.fields;
  f.load_end_addr = f.load_addr + 8000;
  EXPECT_TRUE(fails_with(load_with(f), EINVAL, "but only 0xfa0 remain"));
}

TEST_F(MultibootErrors, EntryOutsideTheLoadedRange) {
  KludgeFields f = k_.fields;
  f.entry_addr = f.load_addr + 4000;  // first byte past the file
  EXPECT_TRUE(fails_with(load_with(f), EINVAL, "entry_addr 0x200fa0 is outside the loaded range [0x200000, 0x200fa0)"));
  f.entry_addr = f.load_addr - 1;
  EXPECT_TRUE(fails_with(load_with(f), EINVAL, "entry_addr 0x1fffff is outside"));
}

TEST_F(MultibootErrors, LoadAddrAboveHeaderAddr) {
  KludgeFields f = k_.fields;
  f.load_addr = f.header_addr + 4;
  EXPECT_TRUE(fails_with(load_with(f), EINVAL, "load_addr 0x200044 is above header_addr 0x200040"));
}

TEST_F(MultibootErrors, LoadAddrBeforeTheStartOfTheFile) {
  KludgeFields f = k_.fields;
  f.load_addr = f.header_addr - 0x1000;  // the header is only 64 bytes into the file
  EXPECT_TRUE(fails_with(load_with(f), EINVAL, "but the header is at file offset 0x40"));
}

TEST_F(MultibootErrors, BssEndBelowLoadEnd) {
  KludgeFields f = k_.fields;
  f.bss_end_addr = f.load_addr + 100;
  EXPECT_TRUE(fails_with(load_with(f), EINVAL, "bss_end_addr 0x200064 is below the end of the loaded range"));
}

TEST_F(MultibootErrors, HeaderOutsideTheLoadedRange) {
  KludgeFields f = k_.fields;
  f.load_end_addr = f.header_addr;
  f.entry_addr = f.load_addr;
  EXPECT_TRUE(fails_with(load_with(f), EINVAL, "header_addr 0x200040 is outside the loaded range"));
}

TEST_F(MultibootErrors, KludgeOverTheFirmwareArea) {
  auto k = kludge_image(0xF0000, 0, 512);
  EXPECT_TRUE(fails_with(load(mem_, k.bytes), EINVAL,
                         "multiboot load range [0xf0000, 0xf0200) overlaps the firmware area [0xe0000, 0x100000)"));
}

TEST_F(MultibootErrors, KludgeOverTheEbda) {
  auto k = kludge_image(0x9F000, 0, 0x1000);
  EXPECT_TRUE(fails_with(load(mem_, k.bytes), EINVAL,
                         "multiboot load range [0x9f000, 0xa0000) overlaps the EBDA [0x9fc00, 0xa0000)"));
}

TEST_F(MultibootErrors, KludgeInPageZero) {
  auto k = kludge_image(0x0, 0, 512);
  EXPECT_TRUE(fails_with(load(mem_, k.bytes), EINVAL, "multiboot load range [0x0, 0x200) overlaps page 0"));
}

TEST_F(MultibootErrors, NonElfWithoutKludge) {
  Bytes image = pattern(1000, 2);
  Bytes h = multiboot_header(kBasicFlags);
  std::copy(h.begin(), h.end(), image.begin() + 16);
  EXPECT_TRUE(fails_with(load(mem_, image), EINVAL, "has no address fields (flag 16) and the image is not ELF"));
}

TEST_F(MultibootErrors, CmdlineTooLong) {
  std::string cmdline(layout::kCmdlineMax, 'a');  // one more than fits with the NUL
  EXPECT_TRUE(fails_with(load(mem_, k_.bytes, cmdline), E2BIG, "the kernel command line is 65536 bytes"));
  cmdline.pop_back();
  EXPECT_TRUE(load(mem_, k_.bytes, cmdline));
}

TEST_F(MultibootErrors, InitrdTooLargeForRam) {
  Bytes initrd(64 * MiB - 2 * MiB, 1);  // the image sits at 2 MiB: this runs past the end of RAM
  EXPECT_TRUE(fails_with(load(mem_, k_.bytes, "", {{initrd, ""}}), EFAULT, "module 0 (65011712 bytes) does not fit"));
}

}  // namespace
}  // namespace evmm
