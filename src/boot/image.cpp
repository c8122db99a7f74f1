#include "boot/image.h"

#include <algorithm>

#include "memory/layout.h"

namespace evmm::boot {

namespace {

constexpr uint64_t kVgaHoleStart = layout::kLowRamEnd;
constexpr uint64_t kVgaHoleEnd = layout::kBiosStart;

uint64_t align_up(uint64_t v, uint64_t a) { return (v + a - 1) & ~(a - 1); }

// "[0, 0xa0000) [0x100000, 0x4000000)": where RAM is, for messages about what does not fit.
std::string ram_ranges(const GuestMemory& mem) {
  std::string out;
  for (const auto& r : mem.regions())
    if (r.kind == RegionKind::Ram) out += fmt::format("{}[{}, {})", out.empty() ? "" : " ", r.start, r.end());
  return out;
}

Result<void> check_placement(const GuestMemory& mem, const Segment& s) {
  uint64_t end;
  if (__builtin_add_overflow(s.paddr, s.memsz, &end))
    return make_error(EINVAL, "{} at {:#x} with {:#x} bytes wraps past the end of the address space", s.label,
                      s.paddr, s.memsz);
  if (s.paddr < kVgaHoleEnd && end > kVgaHoleStart)
    return make_error(EINVAL, "{} [{:#x}, {:#x}) overlaps the VGA and option-ROM hole [{:#x}, {:#x})", s.label,
                      s.paddr, end, kVgaHoleStart, kVgaHoleEnd);
  if (s.paddr < layout::kBiosEnd && end > layout::kBiosStart)
    return make_error(EINVAL, "{} [{:#x}, {:#x}) overlaps the firmware area [{:#x}, {:#x}), where the ACPI and MP "
                      "tables live", s.label, s.paddr, end, layout::kBiosStart, layout::kBiosEnd);
  if (s.paddr < kVgaHoleStart && end > layout::kEbdaStart)
    return make_error(EINVAL, "{} [{:#x}, {:#x}) overlaps the EBDA [{:#x}, {:#x}), which e820 reports reserved",
                      s.label, s.paddr, end, layout::kEbdaStart, kVgaHoleStart);
  // write_platform_tables fills the BDA words 0x40E/0x413 there after loading (the MP spec's EBDA search).
  if (s.paddr < kPageSize)
    return make_error(EINVAL, "{} [{:#x}, {:#x}) overlaps page 0 (the real-mode IVT and BIOS data area), which evmm "
                      "keeps free", s.label, s.paddr, end);
  if (!mem.contains(GuestAddress(s.paddr), s.memsz))
    return make_error(EFAULT, "{} [{:#x}, {:#x}) is not inside guest RAM, which is {}", s.label, s.paddr, end,
                      ram_ranges(mem));
  return {};
}

}  // namespace

Result<LoadedImage> load_segments(const GuestMemory& mem, std::span<const uint8_t> image,
                                  std::vector<Segment> segments) {
  std::erase_if(segments, [](const Segment& s) { return s.memsz == 0; });
  if (segments.empty()) return make_error(EINVAL, "the image has nothing to load");
  for (const auto& s : segments) TRY(check_placement(mem, s));
  std::sort(segments.begin(), segments.end(), [](auto& a, auto& b) { return a.paddr < b.paddr; });
  for (size_t i = 1; i < segments.size(); ++i) {
    const Segment &a = segments[i - 1], &b = segments[i];
    if (a.paddr + a.memsz > b.paddr)
      return make_error(EINVAL, "{} [{:#x}, {:#x}) and {} [{:#x}, {:#x}) overlap", a.label, a.paddr,
                        a.paddr + a.memsz, b.label, b.paddr, b.paddr + b.memsz);
  }

  LoadedImage out{segments.front().paddr, 0};
  for (const auto& s : segments) {
    TRY_CTX(mem.write(GuestAddress(s.paddr), image.subspan(s.file_offset, s.filesz)), s.label);
    TRY_CTX(mem.fill(GuestAddress(s.paddr + s.filesz), 0, s.memsz - s.filesz), s.label);
    out.high = std::max(out.high, s.paddr + s.memsz);
  }
  return out;
}

Result<void> check_entry32(uint64_t entry, std::span<const Segment> segments) {
  if (entry >= 4 * layout::GiB)
    return make_error(EINVAL, "entry point {:#x} is above 4 GiB, out of reach in 32-bit mode", entry);
  for (const auto& s : segments)
    if (entry >= s.paddr && entry - s.paddr < s.memsz) return {};
  return make_error(EINVAL, "entry point {:#x} is not inside any loaded segment", entry);
}

Result<void> check_cmdlines(const BootConfig& cfg) {
  auto check = [](const std::string& s, std::string_view what) -> Result<void> {
    if (s.size() + 1 > layout::kCmdlineMax)
      return make_error(E2BIG, "{} is {} bytes; at most {} fit (plus the NUL)", what, s.size(),
                        layout::kCmdlineMax - 1);
    if (s.find('\0') != std::string::npos)
      return make_error(EINVAL, "{} contains a NUL byte at offset {}", what, s.find('\0'));
    return {};
  };
  TRY(check(cfg.cmdline, "the kernel command line"));
  for (size_t i = 0; i < cfg.modules.size(); ++i)
    TRY(check(cfg.modules[i].cmdline, fmt::format("the command line of module {}", i)));
  return {};
}

Result<uint64_t> write_cmdline(const GuestMemory& mem, const std::string& cmdline, uint64_t addr) {
  std::vector<uint8_t> bytes(cmdline.begin(), cmdline.end());
  bytes.push_back(0);
  TRY_CTX(mem.write(GuestAddress(addr), bytes), "writing the command line");
  return addr;
}

Result<std::vector<PlacedModule>> place_modules(const GuestMemory& mem, std::span<const Module> modules,
                                                uint64_t start, uint64_t limit, GuestArena& scratch) {
  std::vector<PlacedModule> placed;
  uint64_t cursor = start;
  for (size_t i = 0; i < modules.size(); ++i) {
    uint64_t size = modules[i].data.size();
    uint64_t addr = align_up(cursor, kPageSize);
    uint64_t end;
    if (addr < cursor || __builtin_add_overflow(addr, size, &end) || end > limit ||
        !mem.contains(GuestAddress(addr), size))
      return make_error(EFAULT, "module {} ({} bytes) does not fit: after the image it would occupy [{:#x}, {:#x}), "
                        "which is not all guest RAM{} (RAM is {}); give the guest more memory", i, size, addr,
                        addr + size, limit < UINT64_MAX ? " below 4 GiB" : "", ram_ranges(mem));
    placed.push_back({addr, size, 0});
    cursor = end;
  }
  for (size_t i = 0; i < modules.size(); ++i) {
    TRY_CTX(mem.write(GuestAddress(placed[i].addr), modules[i].data), fmt::format("module {}", i));
    placed[i].cmdline_addr = TRY(scratch.put_string(modules[i].cmdline));
  }
  return placed;
}

}  // namespace evmm::boot
