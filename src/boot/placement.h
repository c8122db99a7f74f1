// Where the boot data goes (issue 13): after an image's segments are known, every piece of boot data
// the loaders and cpu_entry write is given a range of free RAM that no segment overlaps.
//
// Rules:
//  - a piece keeps its fixed layout.h address when that range is free, so images at 1 MiB and above
//    see exactly the layout they always did;
//  - otherwise it takes the lowest free aligned range of RAM in [4 KiB, EBDA), else the lowest one
//    from 1 MiB up to 4 GiB (multiboot info and PVH start info are 32-bit pointers; CR3 is loaded in
//    32-bit mode);
//  - page 0 (real-mode IVT and BIOS data area), the EBDA, the VGA hole and the firmware area are
//    never used.
// Errors: E2BIG when a piece finds no free range, naming the piece.
#pragma once

#include <cstdint>
#include <span>

#include "base/result.h"
#include "boot/boot.h"
#include "boot/image.h"
#include "memory/guest_memory.h"

namespace evmm::boot {

// Which pieces a loader needs: a plain ELF image gets only the GDT; a boot protocol also passes an
// information structure, a command line and scratch data (memory map, module list, strings).
enum class BootData { GdtOnly, Protocol };

struct BootPlacement {
  uint64_t gdt = 0;
  uint64_t info = 0;         // boot_params / multiboot info / PVH start info; 0 when not placed
  uint64_t page_tables = 0;  // six pages of identity tables for a 64-bit entry; 0 when not placed
  uint64_t cmdline = 0;      // layout::kCmdlineMax bytes
  uint64_t scratch = 0, scratch_end = 0;
  uint64_t high_end = 0;     // one past the highest piece placed at or above 1 MiB (0 if none)
};

Result<BootPlacement> place_boot_data(const GuestMemory& mem, std::span<const Segment> segments, BootData what,
                                      EntryMode mode);

// Where modules start: above the image, any boot data placed above 1 MiB, and low RAM.
uint64_t modules_start(const LoadedImage& loaded, const BootPlacement& p);

// The boot scratch area the placement chose.
GuestArena make_scratch(const GuestMemory& mem, const BootPlacement& p);

}  // namespace evmm::boot
