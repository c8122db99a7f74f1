// The one e820 map: multiboot's mmap and mem_lower/mem_upper, PVH's memmap and later boot_params
// and fw_cfg are all derived from it, so that they cannot disagree.
#include <array>

#include "boot/boot.h"
#include "memory/layout.h"

namespace evmm {

namespace {

// Boundaries inside a region where the type may change: the EBDA and the BIOS area are reserved
// even when RAM backs them.
constexpr std::array<uint64_t, 4> kCuts = {layout::kEbdaStart, layout::kLowRamEnd, layout::kBiosStart,
                                            layout::kBiosEnd};

uint32_t type_at(const MemoryRegion& r, uint64_t addr) {
  if (r.kind == RegionKind::Bios) return e820::kReserved;
  if (addr >= layout::kEbdaStart && addr < layout::kLowRamEnd) return e820::kReserved;
  if (addr >= layout::kBiosStart && addr < layout::kBiosEnd) return e820::kReserved;
  return e820::kRam;
}

void append(std::vector<E820Entry>& map, uint64_t addr, uint64_t size, uint32_t type) {
  if (!map.empty() && map.back().type == type && map.back().addr + map.back().size == addr) {
    map.back().size += size;
    return;
  }
  map.push_back({addr, size, type});
}

}  // namespace

std::vector<E820Entry> build_e820(const GuestMemory& mem) {
  std::vector<E820Entry> map;
  // Regions are sorted and disjoint, so the pieces come out in order.
  for (const auto& r : mem.regions()) {
    uint64_t at = r.start.raw(), end = r.end().raw();
    while (at < end) {
      uint64_t next = end;
      for (uint64_t cut : kCuts)
        if (cut > at && cut < next) next = cut;
      append(map, at, next - at, type_at(r, at));
      at = next;
    }
  }
  return map;
}

}  // namespace evmm
