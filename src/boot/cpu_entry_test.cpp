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
