// PVH boot (Xen's "x86/HVM direct boot ABI", docs/misc/pvh.pandoc): an ELF image announces a 32-bit
// entry point in a XEN_ELFNOTE_PHYS32_ENTRY note and is entered with EBX = &hvm_start_info.
#pragma once

#include <cstdint>
#include <optional>
#include <span>

#include "base/result.h"
#include "boot/boot.h"
#include "boot/elf.h"

namespace evmm::boot {

// The PHYS32_ENTRY address, or nullopt when the image has no such note. EINVAL when the note is
// malformed: its descriptor must be 4 or 8 bytes (Linux emits a pointer-sized one) and below 4 GiB.
Result<std::optional<uint64_t>> find_pvh_entry(const ElfImage& elf, std::span<const uint8_t> image);

// Loads the PT_LOAD segments, places modules after them, and writes hvm_start_info version 1 at
// the placed information address (placement.h) with the command line, module list, e820 memory map and kRsdpAddress.
Result<BootEntry> load_pvh(const GuestMemory& mem, const BootConfig& cfg, const ElfImage& elf, uint64_t entry);

}  // namespace evmm::boot
