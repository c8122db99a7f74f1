// Format detection, plain ELF loading and segment placement, through the public load_image.
#include <gtest/gtest.h>

#include <random>

#include "base/log.h"
#include "boot/arena.h"
#include "boot/boot.h"
#include "testing/boot_test_images.h"
#include "memory/layout.h"

namespace evmm {
namespace {

using namespace boot::test_images;
using layout::MiB;

ElfSpec two_segments(bool is64) {
  ElfSpec s;
  s.is64 = is64;
  s.entry = 0x100010;
  s.segments = {{.paddr = 0x100000, .data = pattern(300, 1), .memsz = 0x2000},
                {.paddr = 0x200000, .data = pattern(64, 2)}};
  return s;
}

TEST(BootDetect, EmptyImageIsUnknownFormat) {
  auto mem = make_memory();
  EXPECT_TRUE(fails_with(load(mem, {}), ENOEXEC, "empty"));
}

TEST(BootDetect, BzImageGoesToTheLinuxLoader) {
  auto mem = make_memory();
  Bytes img(0x400, 0);
  std::memcpy(img.data() + 0x202, "HdrS", 4);
  img[0x201] = 0x6a;
  EXPECT_TRUE(fails_with(load(mem, img), EINVAL, "bzImage: boot protocol 0.00 is older than 2.10"));
}

TEST(BootDetect, BadMagicIsUnknownFormat) {
  auto mem = make_memory();
  Bytes img = build_elf(two_segments(false));
  img[3] = 'G';  // "\x7fELG"
  EXPECT_TRUE(fails_with(load(mem, img), ENOEXEC, "unrecognised image format"));
  EXPECT_TRUE(fails_with(load(mem, pattern(100, 9)), ENOEXEC, "unrecognised image format"));
}

TEST(BootDetect, FormatNames) {
  EXPECT_STREQ(to_string(ImageFormat::Multiboot), "multiboot");
  EXPECT_STREQ(to_string(ImageFormat::Pvh), "PVH");
  EXPECT_STREQ(to_string(ImageFormat::ElfPlain), "ELF");
  EXPECT_STREQ(to_string(ImageFormat::Linux), "Linux");
}

class BootPlainElf : public ::testing::TestWithParam<bool> {};

TEST_P(BootPlainElf, LoadsSegmentsZeroesBssAndEntersAtEntry) {
  auto mem = make_memory();
  // Garbage where the bss goes, to see it cleared.
  ASSERT_TRUE(mem.fill(GuestAddress(0x100000), 0xaa, 0x3000));
  ElfSpec spec = two_segments(GetParam());
  auto entry = load(mem, build_elf(spec));
  ASSERT_TRUE(entry) << entry.error().message();
  EXPECT_EQ(entry->format, ImageFormat::ElfPlain);
  EXPECT_EQ(entry->mode, EntryMode::Protected32);
  EXPECT_EQ(entry->rip, 0x100010u);
  EXPECT_EQ(read_guest(mem, 0x100000, 300), spec.segments[0].data);
  EXPECT_EQ(read_guest(mem, 0x200000, 64), spec.segments[1].data);
  EXPECT_EQ(read_guest(mem, 0x100000 + 300, 0x2000 - 300), Bytes(0x2000 - 300, 0));
  // Beyond memsz nothing was touched.
  EXPECT_EQ(read_guest(mem, 0x102000, 16), Bytes(16, 0xaa));
}

INSTANTIATE_TEST_SUITE_P(Boot, BootPlainElf, ::testing::Bool(),
                         [](const auto& info) { return info.param ? "Elf64" : "Elf32"; });

TEST(BootPlainElf64, VirtualEntryIsTranslatedToItsLoadAddress) {
  auto mem = make_memory();
  ElfSpec s;
  s.is64 = true;
  s.entry = 0xffffffff81000040ull;
  s.segments = {{.paddr = 0x1000000, .data = pattern(128, 3), .vaddr = 0xffffffff81000000ull}};
  auto entry = load(mem, build_elf(s));
  ASSERT_TRUE(entry) << entry.error().message();
  EXPECT_EQ(entry->rip, 0x1000040u);
}

TEST(BootPlacement, SegmentOutsideRam) {
  auto mem = make_memory();
  ElfSpec s = two_segments(false);
  s.segments[1].paddr = 64 * MiB - 32;  // 64 bytes straddle the end of RAM
  EXPECT_TRUE(fails_with(load(mem, build_elf(s)), EFAULT, "ELF segment 1 [0x3ffffe0, 0x4000020) is not inside guest RAM"));
}

TEST(BootPlacement, SegmentInTheMmioHoleOf4GiB) {
  auto mem = make_memory(4 * layout::GiB);
  ElfSpec s = two_segments(false);
  s.segments[1].paddr = 0xC0000000;
  EXPECT_TRUE(fails_with(load(mem, build_elf(s)), EFAULT, "ELF segment 1 [0xc0000000, 0xc0000040) is not inside"));
}

TEST(BootPlacement, SegmentInTheVgaHole) {
  auto mem = make_memory();
  ElfSpec s = two_segments(false);
  s.segments[1].paddr = 0xB8000;
  EXPECT_TRUE(fails_with(load(mem, build_elf(s)), EINVAL, "ELF segment 1 [0xb8000, 0xb8040) overlaps the VGA"));
}

TEST(BootPlacement, SegmentBelowOneMiBLoadsThere) {
  auto mem = make_memory();
  ElfSpec s = two_segments(false);
  s.segments[0].paddr = 0x8000;  // [0x8000, 0xa000) with its bss: over the fixed page tables, which ELF needs not
  s.entry = 0x8000;
  auto entry = load(mem, build_elf(s));
  ASSERT_TRUE(entry) << entry.error().message();
  EXPECT_EQ(entry->rip, 0x8000u);
  EXPECT_EQ(read_guest(mem, 0x8000, 300), s.segments[0].data);
  EXPECT_EQ(entry->gdt, layout::kBootGdt);
}

TEST(BootPlacement, SegmentOverTheBootGdtMovesIt) {
  auto mem = make_memory();
  ElfSpec s = two_segments(false);
  s.segments[0].paddr = 0x6000;
  s.entry = 0x6000;
  auto entry = load(mem, build_elf(s));
  ASSERT_TRUE(entry) << entry.error().message();
  EXPECT_EQ(entry->gdt, 0x1000u);
  EXPECT_EQ(read_guest(mem, 0x6000, 300), s.segments[0].data);
}

TEST(BootPlacement, SegmentInTheFirmwareArea) {
  auto mem = make_memory();
  ElfSpec s = two_segments(false);
  s.segments[0].paddr = 0xF0000;
  s.entry = 0xF0000;
  EXPECT_TRUE(fails_with(load(mem, build_elf(s)), EINVAL,
                         "ELF segment 0 [0xf0000, 0xf2000) overlaps the firmware area [0xe0000, 0x100000)"));
}

TEST(BootPlacement, SegmentInTheEbda) {
  auto mem = make_memory();
  ElfSpec s = two_segments(false);
  s.segments[0].paddr = 0x9E000;
  s.entry = 0x9E000;
  EXPECT_TRUE(fails_with(load(mem, build_elf(s)), EINVAL,
                         "ELF segment 0 [0x9e000, 0xa0000) overlaps the EBDA [0x9fc00, 0xa0000)"));
}

TEST(BootPlacement, SegmentInPageZero) {
  auto mem = make_memory();
  ElfSpec s = two_segments(false);
  s.segments[0].paddr = 0x800;
  s.entry = 0x800;
  EXPECT_TRUE(fails_with(load(mem, build_elf(s)), EINVAL, "ELF segment 0 [0x800, 0x2800) overlaps page 0"));
}

TEST(BootPlacement, OverlappingSegments) {
  auto mem = make_memory();
  ElfSpec s = two_segments(false);
  s.segments[1].paddr = 0x101ff0;  // inside segment 0's bss
  EXPECT_TRUE(fails_with(load(mem, build_elf(s)), EINVAL,
                         "ELF segment 0 [0x100000, 0x102000) and ELF segment 1 [0x101ff0, 0x102030) overlap"));
}

TEST(BootPlacement, TouchingSegmentsLoadButOneByteOfOverlapDoesNot) {
  auto mem = make_memory();
  ElfSpec s = two_segments(false);
  s.segments[1].paddr = 0x102000;  // exactly where segment 0's bss ends
  EXPECT_TRUE(load(mem, build_elf(s)));
  s.segments[1].paddr = 0x101fff;
  EXPECT_TRUE(fails_with(load(mem, build_elf(s)), EINVAL, "overlap"));
}

TEST(BootPlacement, RefusedImageWritesNothing) {
  auto mem = make_memory();
  ElfSpec s = two_segments(false);
  s.segments[1].paddr = 64 * MiB;
  ASSERT_FALSE(load(mem, build_elf(s)));
  EXPECT_EQ(read_guest(mem, 0x100000, 300), Bytes(300, 0));
}

TEST(BootPlacement, EntryOutsideEverySegment) {
  auto mem = make_memory();
  ElfSpec s = two_segments(false);
  s.entry = 0x300000;
  EXPECT_TRUE(fails_with(load(mem, build_elf(s)), EINVAL, "entry point 0x300000 is not inside any loaded segment"));
}

TEST(BootPlacement, SegmentThatWrapsTheAddressSpace) {
  auto mem = make_memory();
  ElfSpec s = two_segments(true);
  s.segments[1].paddr = 0xfffffffffffff000ull;
  s.segments[1].memsz = 0x2000;
  EXPECT_TRUE(fails_with(load(mem, build_elf(s)), EINVAL, "wraps"));
}

TEST(BootArena, AlignsAndRefusesWhatDoesNotFit) {
  auto mem = make_memory();
  boot::GuestArena arena(mem, 0x30000, 0x30100, "test");
  EXPECT_EQ(*arena.put_string("ab"), 0x30000u);
  EXPECT_EQ(*arena.alloc(16, 64), 0x30040u);
  EXPECT_EQ(read_guest(mem, 0x30000, 3), (Bytes{'a', 'b', 0}));
  EXPECT_TRUE(fails_with(arena.alloc(0xb1, 16), E2BIG, "the test area [0x30000, 0x30100) is full"));
  EXPECT_EQ(*arena.alloc(0xb0, 1), 0x30050u);  // exactly the rest
  EXPECT_TRUE(fails_with(arena.alloc(1, 1), E2BIG, "full"));
}

TEST(BootRobustness, TruncatedImagesNeverCrash) {
  auto mem = make_memory(16 * MiB);
  std::vector<Bytes> images;
  images.push_back(build_elf(two_segments(false)));
  images.push_back(build_elf(two_segments(true)));
  ElfSpec pvh = two_segments(true);
  pvh.notes = {{"Xen", 18, {0x10, 0, 0x10, 0, 0, 0, 0, 0}}};
  images.push_back(build_elf(pvh));
  ElfSpec mb = two_segments(false);
  Bytes header = multiboot_header(3);
  mb.segments[0].data.insert(mb.segments[0].data.begin(), header.begin(), header.end());
  images.push_back(build_elf(mb));
  images.push_back(kludge_image(0x100000, 64, 512, 0x1000).bytes);
  for (const auto& img : images) {
    ASSERT_TRUE(load(mem, img)) << load(mem, img).error().message();
    for (size_t n = 0; n < img.size(); ++n) (void)load(mem, Bytes(img.begin(), img.begin() + n));
  }
}

TEST(BootRobustness, MutatedImagesNeverCrash) {
  // Mutated plain ELFs warn about the ignored command line thousands of times.
  LogLevel saved = log_level();
  set_log_level(LogLevel::Error);
  auto mem = make_memory(16 * MiB);
  std::mt19937 rng(1234);
  ElfSpec pvh = two_segments(true);
  pvh.notes = {{"Xen", 18, {0x10, 0, 0x10, 0}}};
  ElfSpec sections = pvh;
  sections.notes_in_section = true;
  std::vector<Bytes> images{build_elf(two_segments(false)), build_elf(pvh), build_elf(sections),
                            kludge_image(0x100000, 64, 512, 0x1000).bytes};
  Bytes module = pattern(5000, 4);
  unsigned loaded = 0;
  for (const auto& original : images) {
    for (int round = 0; round < 1500; ++round) {
      Bytes img = original;
      int flips = 1 + int(rng() % 4);
      for (int f = 0; f < flips; ++f) {
        // Headers are where parsing decisions are made: aim most mutations there.
        size_t at = rng() % 3 ? rng() % std::min<size_t>(img.size(), 160) : rng() % img.size();
        img[at] = rng() % 2 ? uint8_t(rng()) : uint8_t(img[at] ^ (1u << (rng() % 8)));
      }
      BootConfig cfg;
      cfg.image = img;
      cfg.cmdline = "console=ttyS0";
      cfg.modules = {{module, "initrd"}};
      if (load_image(mem, cfg)) ++loaded;
    }
  }
  set_log_level(saved);
  // Some mutations are harmless (padding, code bytes); a loader that refused everything would be wrong too.
  EXPECT_GT(loaded, 0u);
}

}  // namespace
}  // namespace evmm
