// build_e820, and its agreement with the maps and sizes the boot protocols hand to the guest.
#include <gtest/gtest.h>

#include <cstdint>

#include <xen/arch-x86/hvm/start_info.h>

#include "boot/boot.h"
#include "boot/multiboot.h"
#include "testing/boot_test_images.h"

namespace evmm {

void PrintTo(const E820Entry& e, std::ostream* os) { *os << fmt::format("[{:#x}+{:#x} type {}]", e.addr, e.size, e.type); }

namespace {

using namespace boot;
using namespace boot::test_images;
using layout::GiB;
using layout::MiB;

TEST(E820Map, SixtyFourMiB) {
  auto mem = make_memory(64 * MiB);
  std::vector<E820Entry> want = {
      {0, 0x9FC00, e820::kRam},
      {0x9FC00, 0x400, e820::kReserved},
      {0xE0000, 0x20000, e820::kReserved},
      {0x100000, 63 * MiB, e820::kRam},
  };
  EXPECT_EQ(build_e820(mem), want);
}

TEST(E820Map, FourGiBSplitsAroundTheMmioHole) {
  auto mem = make_memory(4 * GiB);
  std::vector<E820Entry> want = {
      {0, 0x9FC00, e820::kRam},
      {0x9FC00, 0x400, e820::kReserved},
      {0xE0000, 0x20000, e820::kReserved},
      {0x100000, 3 * GiB - MiB, e820::kRam},
      {4 * GiB, 1 * GiB, e820::kRam},
  };
  EXPECT_EQ(build_e820(mem), want);
}

TEST(E820Map, AdjacentRegionsOfOneTypeMerge) {
  auto mem = GuestMemory::create({{GuestAddress(0x100000), 0x100000}, {GuestAddress(0x200000), 0x100000}});
  ASSERT_TRUE(mem);
  std::vector<E820Entry> want = {{0x100000, 0x200000, e820::kRam}};
  EXPECT_EQ(build_e820(*mem), want);
}

// Every protocol's view of memory, decoded from guest memory after a load.
struct Views {
  std::vector<E820Entry> multiboot_mmap, pvh_memmap;
  uint32_t mem_lower = 0, mem_upper = 0;
};

Views boot_both(const GuestMemory& mem) {
  Views v;
  ElfSpec mb;
  mb.entry = 0x100000;
  mb.segments = {{.paddr = 0x100000, .data = multiboot_header(3)}};
  mb.segments[0].data.resize(64);
  BootConfig cfg;
  Bytes image = build_elf(mb);
  cfg.image = image;
  EXPECT_TRUE(load_image(mem, cfg));
  auto info = *mem.read_obj<MultibootInfo>(GuestAddress(layout::kZeroPage));
  v.mem_lower = info.mem_lower;
  v.mem_upper = info.mem_upper;
  for (uint32_t off = 0; off < info.mmap_length;) {
    auto e = *mem.read_obj<MultibootMmapEntry>(GuestAddress(info.mmap_addr + off));
    v.multiboot_mmap.push_back({e.addr, e.len, e.type});
    off += e.size + 4;
  }

  ElfSpec pvh = mb;
  pvh.notes = {{"Xen", 18, {0, 0, 0x10, 0}}};
  image = build_elf(pvh);
  cfg.image = image;
  EXPECT_TRUE(load_image(mem, cfg));
  auto start = *mem.read_obj<hvm_start_info>(GuestAddress(layout::kZeroPage));
  EXPECT_EQ(start.magic, XEN_HVM_START_MAGIC_VALUE);
  for (uint32_t i = 0; i < start.memmap_entries; ++i) {
    auto e = *mem.read_obj<hvm_memmap_table_entry>(GuestAddress(start.memmap_paddr + i * sizeof(hvm_memmap_table_entry)));
    v.pvh_memmap.push_back({e.addr, e.size, e.type});
  }
  return v;
}

TEST(E820Consistency, AllViewsAgreeAt64MiBAnd4GiB) {
  for (uint64_t ram : {64 * MiB, 4 * GiB}) {
    SCOPED_TRACE(ram);
    auto mem = make_memory(ram);
    auto e820 = build_e820(mem);
    Views v = boot_both(mem);
    EXPECT_EQ(v.multiboot_mmap, e820);
    EXPECT_EQ(v.pvh_memmap, e820);
    // mem_lower is the usable RAM at 0; mem_upper the usable RAM from 1 MiB to the first hole.
    EXPECT_EQ(uint64_t{v.mem_lower} * 1024, e820[0].size);
    EXPECT_EQ(v.mem_lower, 639u);
    auto high = std::find_if(e820.begin(), e820.end(), [](auto& e) { return e.addr == layout::kHighRamStart; });
    ASSERT_NE(high, e820.end());
    EXPECT_EQ(uint64_t{v.mem_upper} * 1024, high->size);
    EXPECT_EQ(v.mem_upper, ram == 64 * MiB ? 63u * 1024 : 3u * 1024 * 1024 - 1024);
  }
}

}  // namespace
}  // namespace evmm
