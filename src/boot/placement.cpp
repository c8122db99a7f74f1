#include "boot/placement.h"

#include <algorithm>
#include <optional>
#include <vector>

#include "memory/layout.h"

namespace evmm::boot {

namespace {

struct Range {
  uint64_t start, end;
};

struct Piece {
  const char* name;
  uint64_t* addr;
  uint64_t fixed, size, align;
};

bool overlaps(const Range& a, const Range& b) { return a.start < b.end && b.start < a.end; }

// RAM boot data may use: low RAM minus page 0 and the EBDA, and RAM from 1 MiB up to 4 GiB.
std::vector<Range> usable_ram(const GuestMemory& mem) {
  std::vector<Range> out;
  for (const auto& r : mem.regions()) {
    if (r.kind != RegionKind::Ram) continue;
    for (Range window : {Range{kPageSize, layout::kEbdaStart}, Range{layout::kHighRamStart, 4 * layout::GiB}}) {
      Range c{std::max(r.start.raw(), window.start), std::min(r.end().raw(), window.end)};
      if (c.start < c.end) out.push_back(c);
    }
  }
  std::sort(out.begin(), out.end(), [](auto& a, auto& b) { return a.start < b.start; });
  return out;
}

bool is_free(const std::vector<Range>& ram, const std::vector<Range>& busy, Range want) {
  bool in_ram = std::any_of(ram.begin(), ram.end(), [&](auto& r) { return want.start >= r.start && want.end <= r.end; });
  return in_ram && std::none_of(busy.begin(), busy.end(), [&](auto& b) { return overlaps(b, want); });
}

// The lowest aligned start in RAM where size bytes overlap nothing busy.
std::optional<uint64_t> lowest_free(const std::vector<Range>& ram, const std::vector<Range>& busy, uint64_t size,
                                    uint64_t align) {
  for (const auto& r : ram) {
    uint64_t at = (r.start + align - 1) & ~(align - 1);
    while (at + size <= r.end) {
      auto hit = std::find_if(busy.begin(), busy.end(), [&](auto& b) { return overlaps(b, {at, at + size}); });
      if (hit == busy.end()) return at;
      at = (hit->end + align - 1) & ~(align - 1);
    }
  }
  return std::nullopt;
}

}  // namespace

Result<BootPlacement> place_boot_data(const GuestMemory& mem, std::span<const Segment> segments, BootData what,
                                      EntryMode mode) {
  BootPlacement p;
  uint64_t scratch_size = layout::kEbdaStart - layout::kBootScratch;
  std::vector<Piece> pieces = {{"the boot GDT", &p.gdt, layout::kBootGdt, kPageSize, kPageSize}};
  if (what == BootData::Protocol) {
    pieces.push_back({"the boot information structure", &p.info, layout::kZeroPage, kPageSize, kPageSize});
    pieces.push_back({"the command line", &p.cmdline, layout::kCmdline, layout::kCmdlineMax, kPageSize});
    pieces.push_back({"the boot scratch area", &p.scratch, layout::kBootScratch, scratch_size, kPageSize});
  }
  if (mode == EntryMode::Long64)
    pieces.push_back({"the identity page tables", &p.page_tables, layout::kPml4, 6 * kPageSize, kPageSize});

  std::vector<Range> ram = usable_ram(mem), busy;
  for (const auto& s : segments)
    if (s.memsz != 0) busy.push_back({s.paddr, s.paddr + s.memsz});
  // Fixed places first, so that one moved piece cannot push out another that fits where it always was.
  for (auto& piece : pieces) {
    if (!is_free(ram, busy, {piece.fixed, piece.fixed + piece.size})) continue;
    *piece.addr = piece.fixed;
    busy.push_back({piece.fixed, piece.fixed + piece.size});
  }
  for (auto& piece : pieces) {
    if (*piece.addr != 0) continue;
    auto at = lowest_free(ram, busy, piece.size, piece.align);
    if (!at)
      return make_error(E2BIG, "no free RAM below 4 GiB for {} ({:#x} bytes) beside the image; give the guest more "
                        "memory or link the image elsewhere", piece.name, piece.size);
    *piece.addr = *at;
    busy.push_back({*at, *at + piece.size});
    if (*at >= layout::kHighRamStart) p.high_end = std::max(p.high_end, *at + piece.size);
  }
  if (p.scratch != 0) p.scratch_end = p.scratch + scratch_size;
  return p;
}

uint64_t modules_start(const LoadedImage& loaded, const BootPlacement& p) {
  return std::max({loaded.high, p.high_end, layout::kHighRamStart});
}

GuestArena make_scratch(const GuestMemory& mem, const BootPlacement& p) {
  return GuestArena(mem, p.scratch, p.scratch_end, "boot scratch");
}

}  // namespace evmm::boot
