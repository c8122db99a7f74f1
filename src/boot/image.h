// Pieces every loader shares: placing image segments, the command line and modules in guest memory.
#pragma once

#include <cstdint>
#include <span>
#include <string>
#include <vector>

#include "base/result.h"
#include "boot/arena.h"
#include "boot/boot.h"
#include "memory/guest_memory.h"

namespace evmm::boot {

constexpr uint64_t kPageSize = 4096;

// One contiguous piece of the image to copy into guest memory, followed by a zeroed tail (bss).
struct Segment {
  std::string label;     // names it in errors: "ELF segment 2", "multiboot load range"
  uint64_t file_offset;  // the caller has checked that [file_offset, +filesz) lies inside the image
  uint64_t filesz;
  uint64_t paddr;
  uint64_t memsz;  // >= filesz
};

// [low, high): from the lowest loaded byte to one past the highest, bss included.
struct LoadedImage {
  uint64_t low = 0;
  uint64_t high = 0;
};

// Checks every segment's placement first (no wrap, not in page 0, the EBDA, the VGA hole or the
// firmware area, inside RAM, no overlap with another segment); only then copies them in and zeroes
// their bss. Segments below 1 MiB are fine: place_boot_data (placement.h) moves boot data around them.
Result<LoadedImage> load_segments(const GuestMemory& mem, std::span<const uint8_t> image,
                                  std::vector<Segment> segments);

// A 32-bit entry point must lie inside a loaded segment: anything else cannot be the image's code.
Result<void> check_entry32(uint64_t entry, std::span<const Segment> segments);

// The kernel and module command lines fit layout::kCmdlineMax with their NUL (E2BIG) and hold no
// NUL of their own (EINVAL), so that the guest reads exactly what was given.
Result<void> check_cmdlines(const BootConfig& cfg);
// Writes the kernel command line at addr (BootPlacement::cmdline); returns that address.
Result<uint64_t> write_cmdline(const GuestMemory& mem, const std::string& cmdline, uint64_t addr);

struct PlacedModule {
  uint64_t addr;
  uint64_t size;
  uint64_t cmdline_addr;  // in the scratch arena, NUL-terminated (possibly empty)
};
// Places the modules page-aligned, one after another, from start on (above the image and boot data). Each must lie in RAM and
// end at or below limit (4 GiB for 32-bit boot protocols): EFAULT otherwise, before any is written.
Result<std::vector<PlacedModule>> place_modules(const GuestMemory& mem, std::span<const Module> modules,
                                                uint64_t start, uint64_t limit, GuestArena& scratch);

}  // namespace evmm::boot
