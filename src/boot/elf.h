// ELF32/ELF64 parsing for little-endian x86 images (System V gABI, "Program Header" and "Note
// Section"): headers are validated once, then loaders read segments and notes from the result.
#pragma once

#include <cstdint>
#include <optional>
#include <span>
#include <string_view>
#include <vector>

#include "base/result.h"
#include "boot/image.h"

namespace evmm::boot {

struct ElfSegment {
  unsigned index;
  uint32_t type;
  uint64_t offset, vaddr, paddr, filesz, memsz, align;
};

struct ElfImage {
  bool is64 = false;
  uint64_t entry = 0;
  uint64_t shoff = 0;
  uint16_t shnum = 0, shentsize = 0;
  std::vector<ElfSegment> segments;  // every program header, each inside the file
};

bool has_elf_magic(std::span<const uint8_t> image);

// Validates the ELF header and every program header; EINVAL with the reason.
Result<ElfImage> parse_elf(std::span<const uint8_t> image);

// The descriptor of the first note with this owner name and type, searched in PT_NOTE segments, or
// in SHT_NOTE sections when there is no PT_NOTE. EINVAL for a note that runs past its container.
Result<std::optional<std::span<const uint8_t>>> find_elf_note(const ElfImage& elf, std::span<const uint8_t> image,
                                                              std::string_view name, uint32_t type);

// The PT_LOAD segments, to be loaded at p_paddr.
std::vector<Segment> elf_load_segments(const ElfImage& elf);

// e_entry as a physical address: like GRUB, translated through the PT_LOAD whose virtual range holds
// it (a kernel linked high enters at its load address); otherwise e_entry itself.
uint64_t elf_entry_paddr(const ElfImage& elf);

}  // namespace evmm::boot
