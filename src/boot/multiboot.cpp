#include "boot/multiboot.h"

#include <algorithm>
#include <cstring>

#include "base/log.h"
#include "boot/image.h"
#include "boot/placement.h"
#include "memory/layout.h"

namespace evmm::boot {

namespace {

constexpr uint32_t kKnownRequired = MultibootFlag::PageAlign | MultibootFlag::MemoryInfo | MultibootFlag::VideoMode;
// Scanning past 8 KiB only serves a better error message, so it stops early.
constexpr uint64_t kMisplacedSearchLimit = 64 * 1024;

uint32_t read32(std::span<const uint8_t> image, uint64_t off) {
  uint32_t v;
  std::memcpy(&v, image.data() + off, sizeof v);
  return v;
}

bool checksum_ok(std::span<const uint8_t> image, uint64_t off) {
  return read32(image, off) == kMultibootHeaderMagic &&
         uint32_t(read32(image, off) + read32(image, off + 4) + read32(image, off + 8)) == 0;
}

// The first offset in [0, limit) where a header with a good checksum starts.
std::optional<uint64_t> scan(std::span<const uint8_t> image, uint64_t from, uint64_t limit) {
  limit = std::min<uint64_t>(limit, image.size());
  for (uint64_t off = from; off + 12 <= limit; off += 4)
    if (checksum_ok(image, off)) return off;
  return std::nullopt;
}

// How many header bytes the flags say are present (§3.1.1).
uint64_t header_length(uint32_t flags) {
  if (has_flag(flags, MultibootFlag::VideoMode)) return 48;
  if (has_flag(flags, MultibootFlag::AoutKludge)) return 32;
  return 12;
}

// §3.1.3: the address fields say which part of the file goes where; the header's own file offset
// ties header_addr to a file position and so fixes the file offset of load_addr.
Result<Segment> kludge_segment(std::span<const uint8_t> image, const MultibootHeaderAt& at) {
  const MultibootHeader& h = at.hdr;
  if (h.load_addr > h.header_addr)
    return make_error(EINVAL, "multiboot load_addr {:#x} is above header_addr {:#x}", h.load_addr, h.header_addr);
  uint64_t delta = h.header_addr - h.load_addr;
  if (delta > at.offset)
    return make_error(EINVAL, "multiboot load_addr {:#x} lies {:#x} bytes before the header, but the header is at file "
                      "offset {:#x}", h.load_addr, delta, at.offset);
  uint64_t load_off = at.offset - delta;
  uint64_t file_bytes = image.size() - load_off;
  uint64_t load_end = uint64_t{h.load_addr} + file_bytes;
  if (h.load_end_addr != 0) {
    if (h.load_end_addr <= h.load_addr)
      return make_error(EINVAL, "multiboot load_end_addr {:#x} is not above load_addr {:#x}", h.load_end_addr,
                        h.load_addr);
    if (h.load_end_addr - h.load_addr > file_bytes)
      return make_error(EINVAL, "multiboot load range [{:#x}, {:#x}) needs {:#x} bytes from file offset {:#x}, but "
                        "only {:#x} remain", h.load_addr, h.load_end_addr, h.load_end_addr - h.load_addr, load_off,
                        file_bytes);
    load_end = h.load_end_addr;
  }
  if (h.header_addr + header_length(h.flags) > load_end)
    return make_error(EINVAL, "multiboot header_addr {:#x} is outside the loaded range [{:#x}, {:#x})", h.header_addr,
                      h.load_addr, load_end);
  uint64_t mem_end = load_end;
  if (h.bss_end_addr != 0) {
    if (h.bss_end_addr < load_end)
      return make_error(EINVAL, "multiboot bss_end_addr {:#x} is below the end of the loaded range {:#x}",
                        h.bss_end_addr, load_end);
    mem_end = h.bss_end_addr;
  }
  if (h.entry_addr < h.load_addr || h.entry_addr >= load_end)
    return make_error(EINVAL, "multiboot entry_addr {:#x} is outside the loaded range [{:#x}, {:#x})", h.entry_addr,
                      h.load_addr, load_end);
  return Segment{"multiboot load range", load_off, load_end - h.load_addr, h.load_addr, mem_end - h.load_addr};
}

// KiB of conventional memory: the usable e820 entry at 0 (§3.3 mem_lower).
uint32_t mem_lower_kib(std::span<const E820Entry> e820) {
  for (const auto& e : e820)
    if (e.addr == 0 && e.type == e820::kRam) return uint32_t(std::min<uint64_t>(e.size, 640 * layout::KiB) / 1024);
  return 0;
}

// KiB of RAM from 1 MiB up to the first hole (§3.3 mem_upper).
uint32_t mem_upper_kib(std::span<const E820Entry> e820) {
  uint64_t end = layout::kHighRamStart;
  for (const auto& e : e820)
    if (e.type == e820::kRam && e.addr <= end && e.addr + e.size > end) end = e.addr + e.size;
  return uint32_t(std::min<uint64_t>(end - layout::kHighRamStart, 0xffffffffull * 1024) / 1024);
}

}  // namespace

Result<std::optional<MultibootHeaderAt>> find_multiboot_header(std::span<const uint8_t> image) {
  auto off = scan(image, 0, kMultibootSearchLimit);
  if (!off) {
    uint64_t limit = std::min<uint64_t>(kMultibootSearchLimit, image.size());
    for (uint64_t o = 0; o + 12 <= limit; o += 4)
      if (read32(image, o) == kMultibootHeaderMagic)
        return make_error(EINVAL, "multiboot header at offset {:#x} has a bad checksum (magic + flags + checksum = "
                          "{:#x}, not 0)", o, uint32_t(read32(image, o) + read32(image, o + 4) + read32(image, o + 8)));
    if (auto late = scan(image, kMultibootSearchLimit, kMisplacedSearchLimit))
      return make_error(EINVAL, "multiboot header at offset {:#x} lies beyond the first {} bytes of the image, where "
                        "the specification requires it (§3.1.1)", *late, kMultibootSearchLimit);
    return std::optional<MultibootHeaderAt>();
  }
  MultibootHeaderAt at{*off, {}};
  uint64_t n = std::min<uint64_t>(sizeof at.hdr, image.size() - *off);
  std::memcpy(&at.hdr, image.data() + *off, n);
  return std::optional(at);
}

Result<BootEntry> load_multiboot(const GuestMemory& mem, const BootConfig& cfg, const MultibootHeaderAt& at,
                                 const Result<ElfImage>& elf) {
  const uint32_t flags = at.hdr.flags;
  if (uint32_t unknown = flags & kMultibootRequiredMask & ~kKnownRequired)
    return make_error(EINVAL, "multiboot header at offset {:#x} requires flags {:#x}, which evmm does not support",
                      at.offset, unknown);
  if (uint32_t unknown = flags & ~kMultibootRequiredMask & ~uint32_t(MultibootFlag::AoutKludge))
    LOG_DEBUG("multiboot: ignoring optional header flags {:#x}", unknown);
  uint64_t need = header_length(flags);
  if (at.offset + need > std::min<uint64_t>(cfg.image.size(), kMultibootSearchLimit))
    return make_error(EINVAL, "multiboot header at offset {:#x} with flags {:#x} needs {} bytes, past the end of the "
                      "{}", at.offset, flags, need, cfg.image.size() < kMultibootSearchLimit ? "file" : "first 8 KiB");
  if (has_flag(flags, MultibootFlag::VideoMode))
    LOG_DEBUG("multiboot: the image asks for video mode {} {}x{}x{}; evmm has no display and ignores it",
              at.hdr.mode_type, at.hdr.width, at.hdr.height, at.hdr.depth);
  TRY(check_cmdlines(cfg));

  std::vector<Segment> segments;
  uint64_t entry;
  if (has_flag(flags, MultibootFlag::AoutKludge)) {
    segments.push_back(TRY(kludge_segment(cfg.image, at)));
    entry = at.hdr.entry_addr;
  } else if (elf) {
    segments = elf_load_segments(*elf);
    entry = elf_entry_paddr(*elf);
  } else if (has_elf_magic(cfg.image)) {
    return tl::unexpected(elf.error().wrap("multiboot"));
  } else {
    return make_error(EINVAL, "multiboot header at offset {:#x} has no address fields (flag 16) and the image is not "
                      "ELF, so there is no way to load it", at.offset);
  }
  TRY(check_entry32(entry, segments));
  LoadedImage loaded = TRY(load_segments(mem, cfg.image, segments));

  BootPlacement placed = TRY(place_boot_data(mem, segments, BootData::Protocol, EntryMode::Protected32));
  GuestArena scratch = make_scratch(mem, placed);
  auto modules = TRY(place_modules(mem, cfg.modules, modules_start(loaded, placed), 4 * layout::GiB, scratch));
  std::vector<MultibootModule> mods;
  for (const auto& m : modules)
    mods.push_back({uint32_t(m.addr), uint32_t(m.addr + m.size), uint32_t(m.cmdline_addr), 0});
  auto e820 = build_e820(mem);
  std::vector<MultibootMmapEntry> mmap;
  for (const auto& e : e820) mmap.push_back({sizeof(MultibootMmapEntry) - 4, e.addr, e.size, e.type});

  MultibootInfo info{};
  info.flags = MultibootInfoFlag::Memory | MultibootInfoFlag::Cmdline | MultibootInfoFlag::Modules |
               MultibootInfoFlag::Mmap | MultibootInfoFlag::BootLoaderName;
  info.mem_lower = mem_lower_kib(e820);
  info.mem_upper = mem_upper_kib(e820);
  info.cmdline = uint32_t(TRY(write_cmdline(mem, cfg.cmdline, placed.cmdline)));
  info.mods_count = uint32_t(mods.size());
  info.mods_addr = mods.empty() ? 0 : uint32_t(TRY(scratch.put_array(mods, 16)));
  info.mmap_length = uint32_t(mmap.size() * sizeof(MultibootMmapEntry));
  info.mmap_addr = uint32_t(TRY(scratch.put_array(mmap, 8)));
  info.boot_loader_name = uint32_t(TRY(scratch.put_string("evmm")));
  TRY_CTX(mem.write_obj(GuestAddress(placed.info), info), "writing the multiboot information");

  return BootEntry{.format = ImageFormat::Multiboot,
                   .mode = EntryMode::Protected32,
                   .rip = entry,
                   .rax = kMultibootBootloaderMagic,
                   .rbx = placed.info, .gdt = placed.gdt};
}

}  // namespace evmm::boot
