// PVH: the PHYS32_ENTRY note, and hvm_start_info as the guest reads it back.
#include "boot/pvh.h"

#include <cstdint>

#include <xen/arch-x86/hvm/start_info.h>
#include <xen/elfnote.h>

#include <gtest/gtest.h>

#include "testing/boot_test_images.h"

namespace evmm {
namespace {

using namespace boot::test_images;
using layout::MiB;

Bytes le_bytes(uint64_t v, size_t n) {
  Bytes b(n);
  for (size_t i = 0; i < n && i < 8; ++i) b[i] = uint8_t(v >> (8 * i));
  return b;
}

// A Linux-like PVH kernel: ELF64 linked high, with an 8-byte PHYS32_ENTRY note.
ElfSpec pvh_elf(size_t desc_size = 8, bool is64 = true) {
  ElfSpec s;
  s.is64 = is64;
  s.entry = is64 ? 0xffffffff81000000ull : 0x1000000;
  s.segments = {{.paddr = 0x1000000, .data = pattern(4096, 12), .memsz = 0x6000,
                 .vaddr = is64 ? std::optional<uint64_t>(0xffffffff81000000ull) : std::nullopt}};
  s.notes = {{"Xen", XEN_ELFNOTE_GUEST_OS, {'l', 'i', 'n', 'u', 'x', 0}},
             {"Xen", XEN_ELFNOTE_PHYS32_ENTRY, le_bytes(0x1000100, desc_size)}};
  return s;
}

// Issue 13: a PVH image at 0x7000 covers the start info's usual page; it moves, and the image survives.
TEST(PvhBoot, ImageBelowOneMiBMovesTheStartInfo) {
  auto mem = make_memory();
  ElfSpec s = pvh_elf(4, false);
  s.segments[0].paddr = 0x7000;  // [0x7000, 0xd000) with its bss
  s.notes[1].desc = le_bytes(0x7100, 4);
  Bytes initrd = pattern(3000, 14);
  auto entry = load(mem, build_elf(s), "pvh low", {{initrd, "rd"}});
  ASSERT_TRUE(entry) << entry.error().message();
  EXPECT_EQ(entry->rip, 0x7100u);
  EXPECT_EQ(read_guest(mem, 0x7000, 4096), s.segments[0].data);
  EXPECT_EQ(read_guest(mem, 0x8000, 0x5000), Bytes(0x5000, 0));
  EXPECT_EQ(entry->rbx, 0x1000u);  // the lowest free page, page 0 excluded
  EXPECT_EQ(entry->gdt, layout::kBootGdt);
  auto info = *mem.read_obj<hvm_start_info>(GuestAddress(entry->rbx));
  EXPECT_EQ(info.magic, XEN_HVM_START_MAGIC_VALUE);
  EXPECT_EQ(read_cstring(mem, info.cmdline_paddr), "pvh low");
  auto mod = *mem.read_obj<hvm_modlist_entry>(GuestAddress(info.modlist_paddr));
  EXPECT_EQ(mod.paddr, layout::kHighRamStart);
  EXPECT_EQ(read_guest(mem, mod.paddr, initrd.size()), initrd);
}

TEST(PvhBoot, StartInfoDecodesBack) {
  auto mem = make_memory();
  Bytes initrd = pattern(20000, 13);
  auto entry = load(mem, build_elf(pvh_elf()), "console=hvc0", {{initrd, "rd"}, {pattern(10, 1), ""}});
  ASSERT_TRUE(entry) << entry.error().message();
  EXPECT_EQ(entry->format, ImageFormat::Pvh);
  EXPECT_EQ(entry->mode, EntryMode::Protected32);
  EXPECT_EQ(entry->rip, 0x1000100u);  // the note, not e_entry
  EXPECT_EQ(entry->rbx, layout::kZeroPage);

  auto info = *mem.read_obj<hvm_start_info>(GuestAddress(entry->rbx));
  EXPECT_EQ(info.magic, XEN_HVM_START_MAGIC_VALUE);
  EXPECT_EQ(info.version, 1u);
  EXPECT_EQ(info.flags, 0u);
  EXPECT_EQ(info.rsdp_paddr, kRsdpAddress);
  EXPECT_EQ(info.reserved, 0u);
  EXPECT_EQ(read_cstring(mem, info.cmdline_paddr), "console=hvc0");

  ASSERT_EQ(info.nr_modules, 2u);
  auto m0 = *mem.read_obj<hvm_modlist_entry>(GuestAddress(info.modlist_paddr));
  auto m1 = *mem.read_obj<hvm_modlist_entry>(GuestAddress(info.modlist_paddr + sizeof(hvm_modlist_entry)));
  EXPECT_EQ(m0.paddr, 0x1006000u);  // page after the bss end
  EXPECT_EQ(m0.size, initrd.size());
  EXPECT_EQ(m1.paddr, 0x1006000u + 5 * 4096);
  EXPECT_EQ(m1.size, 10u);
  Bytes back(initrd.size());
  ASSERT_TRUE(mem.read(GuestAddress(m0.paddr), back));
  EXPECT_EQ(back, initrd);
  EXPECT_EQ(read_cstring(mem, m0.cmdline_paddr), "rd");
  EXPECT_EQ(read_cstring(mem, m1.cmdline_paddr), "");

  auto e820 = build_e820(mem);
  ASSERT_EQ(info.memmap_entries, e820.size());
  for (size_t i = 0; i < e820.size(); ++i) {
    auto e = *mem.read_obj<hvm_memmap_table_entry>(GuestAddress(info.memmap_paddr + i * sizeof(hvm_memmap_table_entry)));
    EXPECT_EQ(e.addr, e820[i].addr);
    EXPECT_EQ(e.size, e820[i].size);
    EXPECT_EQ(e.type, e820[i].type);
    EXPECT_EQ(e.reserved, 0u);
  }
}

TEST(PvhBoot, FourByteNoteInElf32) {
  auto mem = make_memory();
  auto entry = load(mem, build_elf(pvh_elf(4, false)));
  ASSERT_TRUE(entry) << entry.error().message();
  EXPECT_EQ(entry->format, ImageFormat::Pvh);
  EXPECT_EQ(entry->rip, 0x1000100u);
  auto info = *mem.read_obj<hvm_start_info>(GuestAddress(layout::kZeroPage));
  EXPECT_EQ(info.nr_modules, 0u);
  EXPECT_EQ(info.modlist_paddr, 0u);
}

TEST(PvhBoot, NoteFoundInSectionsWithoutPtNote) {
  auto mem = make_memory();
  ElfSpec s = pvh_elf();
  s.notes_in_section = true;
  auto entry = load(mem, build_elf(s));
  ASSERT_TRUE(entry) << entry.error().message();
  EXPECT_EQ(entry->format, ImageFormat::Pvh);
}

TEST(PvhBoot, PvhWinsOverMultiboot) {
  auto mem = make_memory();
  ElfSpec s = pvh_elf(4, false);
  Bytes h = multiboot_header(3);
  std::copy(h.begin(), h.end(), s.segments[0].data.begin());
  auto entry = load(mem, build_elf(s));
  ASSERT_TRUE(entry) << entry.error().message();
  EXPECT_EQ(entry->format, ImageFormat::Pvh);
}

TEST(PvhBoot, NoteWithBadDescriptorSize) {
  auto mem = make_memory();
  EXPECT_TRUE(fails_with(load(mem, build_elf(pvh_elf(2))), EINVAL, "XEN_ELFNOTE_PHYS32_ENTRY has a 2-byte descriptor"));
  EXPECT_TRUE(fails_with(load(mem, build_elf(pvh_elf(12))), EINVAL, "12-byte descriptor"));
}

TEST(PvhBoot, EntryAbove4GiB) {
  auto mem = make_memory();
  ElfSpec s = pvh_elf();
  s.notes[1].desc = le_bytes(0x100001000ull, 8);
  EXPECT_TRUE(fails_with(load(mem, build_elf(s)), EINVAL, "PHYS32_ENTRY 0x100001000 is above 4 GiB"));
}

TEST(PvhBoot, EntryOutsideTheImage) {
  auto mem = make_memory();
  ElfSpec s = pvh_elf();
  s.notes[1].desc = le_bytes(0x2000000, 8);
  EXPECT_TRUE(fails_with(load(mem, build_elf(s)), EINVAL, "PVH: entry point 0x2000000 is not inside any loaded segment"));
}

TEST(PvhBoot, ModuleCmdlineTooLongAndNul) {
  auto mem = make_memory();
  Bytes image = build_elf(pvh_elf());
  EXPECT_TRUE(fails_with(load(mem, image, "", {{pattern(10, 1), std::string(70000, 'm')}}), E2BIG,
                         "the command line of module 0 is 70000 bytes"));
  EXPECT_TRUE(fails_with(load(mem, image, std::string("a\0b", 3)), EINVAL, "contains a NUL byte at offset 1"));
}

TEST(PvhBoot, InitrdTooLargeForRam) {
  auto mem = make_memory(32 * MiB);
  EXPECT_TRUE(fails_with(load(mem, build_elf(pvh_elf()), "", {{Bytes(16 * MiB, 0), ""}}), EFAULT,
                         "module 0 (16777216 bytes) does not fit: after the image it would occupy [0x1006000, 0x2006000)"));
}

}  // namespace
}  // namespace evmm
