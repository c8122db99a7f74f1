// Where boot data goes around an image's segments (issue 13).
#include "boot/placement.h"

#include <gtest/gtest.h>

#include "testing/boot_test_images.h"

namespace evmm::boot {
namespace {

using test_images::fails_with;
using test_images::make_memory;

Segment seg(uint64_t paddr, uint64_t memsz) { return Segment{"ELF segment 0", 0, 0, paddr, memsz}; }

struct Span {
  uint64_t start, size;
};

// Every placed piece, for overlap checks.
std::vector<Span> pieces(const BootPlacement& p) {
  std::vector<Span> out = {{p.gdt, 0x1000}, {p.info, 0x1000}, {p.cmdline, layout::kCmdlineMax},
                           {p.scratch, p.scratch_end - p.scratch}};
  if (p.page_tables != 0) out.push_back({p.page_tables, 0x6000});
  return out;
}

bool disjoint(Span a, Span b) { return a.start + a.size <= b.start || b.start + b.size <= a.start; }

TEST(Placement, ImagesAtOneMiBKeepTheFixedLayout) {
  auto mem = make_memory();
  std::vector<Segment> segs = {seg(0x100000, 0x5000)};
  auto p = place_boot_data(mem, segs, BootData::Protocol, EntryMode::Long64);
  ASSERT_TRUE(p) << p.error().message();
  EXPECT_EQ(p->gdt, layout::kBootGdt);
  EXPECT_EQ(p->info, layout::kZeroPage);
  EXPECT_EQ(p->page_tables, layout::kPml4);
  EXPECT_EQ(p->cmdline, layout::kCmdline);
  EXPECT_EQ(p->scratch, layout::kBootScratch);
  EXPECT_EQ(p->scratch_end, layout::kEbdaStart);
  EXPECT_EQ(p->high_end, 0u);
  EXPECT_EQ(modules_start(LoadedImage{0x100000, 0x105000}, *p), 0x105000u);
}

TEST(Placement, OnlyTheCoveredPieceMoves) {
  auto mem = make_memory();
  std::vector<Segment> segs = {seg(0x8000, 0x2000)};  // over the first two page-table pages only
  auto p = place_boot_data(mem, segs, BootData::Protocol, EntryMode::Long64);
  ASSERT_TRUE(p) << p.error().message();
  EXPECT_EQ(p->gdt, layout::kBootGdt);
  EXPECT_EQ(p->info, layout::kZeroPage);
  // [0x1000, 0x6000) holds five pages, not six; 0xA000 is the first free run after the image.
  EXPECT_EQ(p->page_tables, 0xA000u);
  EXPECT_EQ(p->cmdline, layout::kCmdline);
}

TEST(Placement, AFullLowRamSendsBootDataAboveOneMiB) {
  auto mem = make_memory();
  std::vector<Segment> segs = {seg(0x1000, 0x9E000), seg(0x100000, 0x3000)};
  auto p = place_boot_data(mem, segs, BootData::Protocol, EntryMode::Long64);
  ASSERT_TRUE(p) << p.error().message();
  auto all = pieces(*p);
  for (size_t i = 0; i < all.size(); ++i) {
    EXPECT_GE(all[i].start, 0x103000u) << i;
    EXPECT_LE(all[i].start + all[i].size, 4 * layout::GiB) << i;
    EXPECT_EQ(all[i].start % 0x1000, 0u) << i;
    for (size_t j = i + 1; j < all.size(); ++j) EXPECT_TRUE(disjoint(all[i], all[j])) << i << " " << j;
  }
  EXPECT_EQ(p->gdt, 0x103000u);  // the lowest free page
  uint64_t top = 0;
  for (auto s : all) top = std::max(top, s.start + s.size);
  EXPECT_EQ(p->high_end, top);
  EXPECT_EQ(modules_start(LoadedImage{0x1000, 0x103000}, *p), top);
}

TEST(Placement, PlainElfPlacesOnlyTheGdt) {
  auto mem = make_memory();
  std::vector<Segment> segs = {seg(0x5000, 0x2000)};
  auto p = place_boot_data(mem, segs, BootData::GdtOnly, EntryMode::Protected32);
  ASSERT_TRUE(p) << p.error().message();
  EXPECT_EQ(p->gdt, 0x1000u);  // page 0 is never used
  EXPECT_EQ(p->info, 0u);
  EXPECT_EQ(p->cmdline, 0u);
  EXPECT_EQ(p->page_tables, 0u);
}

TEST(Placement, NoRoomIsE2big) {
  auto mem = GuestMemory::create({RegionSpec{GuestAddress(0), layout::kLowRamEnd}});
  ASSERT_TRUE(mem);
  std::vector<Segment> segs = {seg(0x1000, 0x9E000)};
  EXPECT_TRUE(fails_with(place_boot_data(*mem, segs, BootData::GdtOnly, EntryMode::Protected32), E2BIG,
                         "no free RAM below 4 GiB for the boot GDT (0x1000 bytes)"));
  std::vector<Segment> most = {seg(0x1000, 0x90000)};
  EXPECT_TRUE(fails_with(place_boot_data(*mem, most, BootData::Protocol, EntryMode::Protected32), E2BIG,
                         "for the command line (0x10000 bytes)"));
}

}  // namespace
}  // namespace evmm::boot
