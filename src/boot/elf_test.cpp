// Malformed ELF headers and note lookup.
#include "boot/elf.h"

#include <gtest/gtest.h>

#include "testing/boot_test_images.h"

namespace evmm {
namespace {

using namespace boot::test_images;

Result<BootEntry> load(const GuestMemory& mem, const Bytes& image) {
  BootConfig cfg;
  cfg.image = image;
  return load_image(mem, cfg);
}

ElfSpec one_segment(bool is64) {
  ElfSpec s;
  s.is64 = is64;
  s.entry = 0x100000;
  s.segments = {{.paddr = 0x100000, .data = pattern(256, 5), .memsz = 0x1000}};
  return s;
}

class ElfMalformed : public ::testing::TestWithParam<bool> {
 protected:
  bool is64() const { return GetParam(); }
  Bytes image() const { return build_elf(one_segment(is64())); }
  // Offsets of fields that sit at different places in the two classes.
  uint64_t phoff_field() const { return is64() ? offsetof(Elf64_Ehdr, e_phoff) : offsetof(Elf32_Ehdr, e_phoff); }
  uint64_t phnum_field() const { return is64() ? offsetof(Elf64_Ehdr, e_phnum) : offsetof(Elf32_Ehdr, e_phnum); }
  uint64_t phentsize_field() const {
    return is64() ? offsetof(Elf64_Ehdr, e_phentsize) : offsetof(Elf32_Ehdr, e_phentsize);
  }
  // Sets field `which` of program header 0 (offset, filesz or memsz) to v.
  void set_phdr(Bytes& img, int which, uint64_t v) const {
    uint64_t ph = phdr_offset(is64(), 0);
    if (is64()) {
      uint64_t off[] = {offsetof(Elf64_Phdr, p_offset), offsetof(Elf64_Phdr, p_filesz), offsetof(Elf64_Phdr, p_memsz)};
      set<uint64_t>(img, ph + off[which], v);
    } else {
      uint64_t off[] = {offsetof(Elf32_Phdr, p_offset), offsetof(Elf32_Phdr, p_filesz), offsetof(Elf32_Phdr, p_memsz)};
      set<uint32_t>(img, ph + off[which], uint32_t(v));
    }
  }
  GuestMemory mem_ = make_memory();
};

TEST_P(ElfMalformed, ValidImageLoads) { EXPECT_TRUE(load(mem_, image())); }

TEST_P(ElfMalformed, TruncatedHeader) {
  Bytes img = image();
  img.resize(is64() ? 60 : 40);
  EXPECT_TRUE(fails_with(load(mem_, img), EINVAL, "ELF header truncated"));
  img.resize(10);
  EXPECT_TRUE(fails_with(load(mem_, img), EINVAL, "ELF header truncated: the file is 10 bytes"));
}

TEST_P(ElfMalformed, BadClassDataTypeAndMachine) {
  Bytes img = image();
  img[EI_CLASS] = 3;
  EXPECT_TRUE(fails_with(load(mem_, img), EINVAL, "ELF class 3"));
  img = image();
  img[EI_DATA] = ELFDATA2MSB;
  EXPECT_TRUE(fails_with(load(mem_, img), EINVAL, "not little-endian"));
  img = image();
  set<uint16_t>(img, offsetof(Elf32_Ehdr, e_machine), EM_ARM);
  EXPECT_TRUE(fails_with(load(mem_, img), EINVAL, "machine 40 is not x86"));
  img = image();
  set<uint16_t>(img, offsetof(Elf32_Ehdr, e_type), ET_DYN);
  EXPECT_TRUE(fails_with(load(mem_, img), EINVAL, "not ET_EXEC"));
}

TEST_P(ElfMalformed, ProgramHeaderTableSize) {
  Bytes img = image();
  set<uint16_t>(img, phentsize_field(), 12);
  EXPECT_TRUE(fails_with(load(mem_, img), EINVAL, "e_phentsize is 12"));
  img = image();
  set<uint16_t>(img, phnum_field(), 0);
  EXPECT_TRUE(fails_with(load(mem_, img), EINVAL, "no program headers"));
}

TEST_P(ElfMalformed, PhnumTooBigForTheFile) {
  Bytes img = image();
  set<uint16_t>(img, phnum_field(), 5000);
  EXPECT_TRUE(fails_with(load(mem_, img), EINVAL, "5000 at offset"));
  img = image();
  if (is64())
    set<uint64_t>(img, phoff_field(), ~0ull - 8);  // would wrap when the table size is added
  else
    set<uint32_t>(img, phoff_field(), ~0u - 8);
  EXPECT_TRUE(fails_with(load(mem_, img), EINVAL, "extend past the end"));
}

TEST_P(ElfMalformed, SegmentFileRangePastEof) {
  Bytes img = image();
  set_phdr(img, 1, img.size());  // p_filesz: the offset is past the headers, so this ends past EOF
  EXPECT_TRUE(fails_with(load(mem_, img), EINVAL, "ELF segment 0: file range"));
  img = image();
  set_phdr(img, 0, img.size() + 1);
  set_phdr(img, 1, 0);
  EXPECT_TRUE(fails_with(load(mem_, img), EINVAL, "extends past the end"));
}

TEST_P(ElfMalformed, FileszLargerThanMemsz) {
  Bytes img = image();
  set_phdr(img, 2, 16);
  EXPECT_TRUE(fails_with(load(mem_, img), EINVAL, "p_filesz 0x100 is larger than p_memsz 0x10"));
}

INSTANTIATE_TEST_SUITE_P(Elf, ElfMalformed, ::testing::Bool(),
                         [](const auto& info) { return info.param ? "Elf64" : "Elf32"; });

TEST(ElfMalformed64, I386MachineIsRefused) {
  auto mem = make_memory();
  Bytes img = build_elf(one_segment(true));
  set<uint16_t>(img, offsetof(Elf64_Ehdr, e_machine), EM_386);
  EXPECT_TRUE(fails_with(load(mem, img), EINVAL, "ELF64 machine 3 is not x86"));
}

// Only 64-bit fields can make offset + filesz wrap in 64-bit arithmetic.
TEST(ElfMalformed64, SegmentFileRangeThatOverflows) {
  auto mem = make_memory();
  Bytes img = build_elf(one_segment(true));
  uint64_t ph = phdr_offset(true, 0);
  set<uint64_t>(img, ph + offsetof(Elf64_Phdr, p_offset), 0x100);
  set<uint64_t>(img, ph + offsetof(Elf64_Phdr, p_filesz), ~0ull - 0x80);  // 0x100 + this wraps to 0x7f
  set<uint64_t>(img, ph + offsetof(Elf64_Phdr, p_memsz), ~0ull);
  EXPECT_TRUE(fails_with(load(mem, img), EINVAL, "ELF segment 0: file range offset 0x100"));
}

TEST(ElfNotes, FoundInPtNoteAndInSectionsWhenThereIsNoPtNote) {
  for (bool in_section : {false, true}) {
    ElfSpec s = one_segment(true);
    s.notes = {{"GNU", 3, {1, 2, 3, 4}}, {"Xen", 6, {'L', 'i', 'n', 'u', 'x', 0}}, {"Xen", 18, {9, 8, 7, 6}}};
    s.notes_in_section = in_section;
    Bytes img = build_elf(s);
    auto elf = boot::parse_elf(img);
    ASSERT_TRUE(elf) << elf.error().message();
    auto desc = boot::find_elf_note(*elf, img, "Xen", 18);
    ASSERT_TRUE(desc) << desc.error().message();
    ASSERT_TRUE(desc->has_value()) << "in_section=" << in_section;
    EXPECT_EQ(Bytes((*desc)->begin(), (*desc)->end()), (Bytes{9, 8, 7, 6}));
    // Same type, other owner: not a match.
    auto other = boot::find_elf_note(*elf, img, "GNU", 18);
    ASSERT_TRUE(other);
    EXPECT_FALSE(other->has_value());
  }
}

TEST(ElfNotes, NoteRunningPastItsSegment) {
  ElfSpec s = one_segment(false);
  s.notes = {{"Xen", 18, {0, 0, 0x10, 0}}};
  Bytes img = build_elf(s);
  // The note's descsz claims far more than the PT_NOTE holds.
  uint64_t note_off = get<uint32_t>(img, phdr_offset(false, 1) + offsetof(Elf32_Phdr, p_offset));
  set<uint32_t>(img, note_off + offsetof(Elf32_Nhdr, n_descsz), 4096);
  auto elf = boot::parse_elf(img);
  ASSERT_TRUE(elf);
  EXPECT_TRUE(fails_with(boot::find_elf_note(*elf, img, "Xen", 18), EINVAL, "runs past the end of it"));
}

TEST(ElfNotes, SectionTableOutsideTheFile) {
  ElfSpec s = one_segment(true);
  s.notes = {{"Xen", 18, {0, 0, 0x10, 0}}};
  s.notes_in_section = true;
  Bytes img = build_elf(s);
  set<uint64_t>(img, offsetof(Elf64_Ehdr, e_shoff), img.size() - 10);
  auto elf = boot::parse_elf(img);
  ASSERT_TRUE(elf);
  EXPECT_TRUE(fails_with(boot::find_elf_note(*elf, img, "Xen", 18), EINVAL, "section headers"));
}

}  // namespace
}  // namespace evmm
