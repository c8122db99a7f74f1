#include "boot/cpu_entry.h"

#include <gtest/gtest.h>

#include "memory/layout.h"

namespace evmm {
namespace {

TEST(CpuEntry, LongModeUsesTheIdentityTablesAndBootGdt) {
  EntryState s = boot_entry_state(BootEntry{ImageFormat::Linux, EntryMode::Long64, 0x100000, 0, 0, 0x7000, 0});
  EXPECT_EQ(s.cr3, layout::kPml4);
  EXPECT_EQ(s.cr0, 0x80000011u);
  EXPECT_EQ(s.cr4, 0x20u);
  EXPECT_EQ(s.efer, 0x500u);
  EXPECT_EQ(s.cs.selector, 0x10);
  EXPECT_EQ(s.cs.l, 1);
  EXPECT_EQ(s.cs.db, 0);
  EXPECT_EQ(s.data.selector, 0x18);
  EXPECT_EQ(s.gdt.base, layout::kBootGdt);
  EXPECT_EQ(s.regs.rip, 0x100000u);
  EXPECT_EQ(s.regs.rsi, 0x7000u);
  EXPECT_EQ(s.regs.rflags, 0x2u);
}

// Issue 13: the GDT and page tables go where placement.h put them, and the entry state points there.
TEST(CpuEntry, MovedTablesAreWrittenAndUsed) {
  auto mem = GuestMemory::create({RegionSpec{GuestAddress(0), 4 * layout::MiB}});
  ASSERT_TRUE(mem);
  BootEntry e{ImageFormat::Linux, EntryMode::Long64, 0x8000};
  e.gdt = 0x1000;
  e.page_tables = 0x200000;
  ASSERT_TRUE(write_boot_tables(*mem, e));
  EXPECT_EQ(*mem->read_obj<uint64_t>(GuestAddress(0x1000 + 0x18)), 0x00cf93000000ffffu);  // flat data
  EXPECT_EQ(*mem->read_obj<uint64_t>(GuestAddress(0x200000)), 0x201003u);               // PML4[0] -> PDPT
  EXPECT_EQ(*mem->read_obj<uint64_t>(GuestAddress(0x6000)), 0u);  // the fixed GDT page stays untouched
  EntryState s = boot_entry_state(e);
  EXPECT_EQ(s.gdt.base, 0x1000u);
  EXPECT_EQ(s.cr3, 0x200000u);
}

TEST(CpuEntry, ProtectedModeHasPagingOff) {
  EntryState s = boot_entry_state(BootEntry{ImageFormat::Multiboot, EntryMode::Protected32, 0x200000, 0x2badb002, 0x9000});
  EXPECT_EQ(s.cr0, 0x11u);
  EXPECT_EQ(s.cr3, 0u);
  EXPECT_EQ(s.efer, 0u);
  EXPECT_EQ(s.cs.l, 0);
  EXPECT_EQ(s.cs.db, 1);
  EXPECT_EQ(s.regs.rax, 0x2badb002u);
  EXPECT_EQ(s.regs.rbx, 0x9000u);
}

}  // namespace
}  // namespace evmm
