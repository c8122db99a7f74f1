#include "boot/linux.h"

#include <algorithm>

#include "base/log.h"
#include "boot/decompress.h"
#include "boot/image.h"
#include "boot/linux_params.h"
#include "boot/placement.h"
#include "memory/layout.h"

namespace evmm::boot {

namespace {

// boot.rst, "Loading The Rest of The Kernel": a bzImage's protected-mode code loads at 1 MiB.
constexpr uint64_t kBzImageLoadAddress = 0x100000;

uint64_t align_up(uint64_t v, uint64_t a) { return (v + a - 1) & ~(a - 1); }

// [start, end): the memory the kernel uses before it reads the memory map.
struct Footprint {
  uint64_t start, end;
};

Result<void> check_kernel64(const BzImage& bz) {
  if (!(bz.hdr.xloadflags & XLF_KERNEL_64))
    return make_error(EINVAL, "bzImage: XLF_KERNEL_64 is clear in xloadflags: the kernel has no 64-bit entry point, "
                      "and evmm enters Linux only through the 64-bit boot protocol");
  return {};
}

Result<void> check_footprint(const GuestMemory& mem, Footprint f, std::string_view what) {
  // The identity map of EntryMode::Long64 (cpu_entry.cpp) covers the first 4 GiB.
  if (f.end > 4 * layout::GiB || f.end < f.start)
    return make_error(EFAULT, "{} [{:#x}, {:#x}) reaches above 4 GiB, beyond the identity map of the 64-bit entry",
                      what, f.start, f.end);
  if (!mem.contains(GuestAddress(f.start), f.end - f.start))
    return make_error(EFAULT, "{} needs [{:#x}, {:#x}), which is not all guest RAM ({} MiB); give the guest more memory",
                      what, f.start, f.end, mem.ram_bytes() / layout::MiB);
  return {};
}

// Boot data, command line, initrd and boot_params around a kernel already in memory at footprint.
Result<BootEntry> finish(const GuestMemory& mem, const BootConfig& cfg, boot_params bp, Footprint kernel,
                         uint64_t rip) {
  std::vector<Segment> busy = {{"the kernel", 0, 0, kernel.start, kernel.end - kernel.start}};
  BootPlacement placed = TRY(place_boot_data(mem, busy, BootData::Protocol, EntryMode::Long64));
  LinuxLoaderFields f;
  f.cmdline = cfg.cmdline;
  f.cmdline_addr = placed.cmdline;
  f.e820 = build_e820(mem);
  if (!cfg.modules.empty()) {
    const auto& initrd = cfg.modules.front().data;
    uint64_t floor = std::max({kernel.end, placed.high_end, layout::kHighRamStart});
    f.initrd_addr = TRY(place_initrd(mem, initrd.size(), bp.hdr.initrd_addr_max, floor));
    f.initrd_size = initrd.size();
    TRY_CTX(mem.write(GuestAddress(f.initrd_addr), initrd), "writing the initrd");
  }
  TRY(fill_loader_fields(bp, f));
  TRY(write_cmdline(mem, cfg.cmdline, placed.cmdline));
  TRY_CTX(mem.write_obj(GuestAddress(placed.info), bp), "writing boot_params");
  return BootEntry{.format = ImageFormat::Linux, .mode = EntryMode::Long64, .rip = rip, .rsi = placed.info,
                   .gdt = placed.gdt, .page_tables = placed.page_tables};
}

Result<void> check_modules(const BootConfig& cfg) {
  TRY(check_cmdlines(cfg));
  if (cfg.modules.size() > 1)
    return make_error(EINVAL, "the Linux boot protocol takes one initrd; {} modules were given", cfg.modules.size());
  return {};
}

// Loads a vmlinux's PT_LOAD segments; returns the range they occupy and the physical entry.
Result<std::pair<LoadedImage, uint64_t>> load_vmlinux_segments(const GuestMemory& mem, std::span<const uint8_t> image,
                                                               const ElfImage& elf) {
  if (!elf.is64) return make_error(EINVAL, "vmlinux: a 32-bit ELF; the 64-bit boot protocol needs an x86-64 kernel");
  auto segments = elf_load_segments(elf);
  uint64_t entry = elf_entry_paddr(elf);
  // The entry must be code the image brings, below 4 GiB: inside the identity map of the 64-bit entry.
  bool inside = std::any_of(segments.begin(), segments.end(),
                            [&](const Segment& s) { return entry >= s.paddr && entry - s.paddr < s.memsz; });
  if (!inside || entry >= 4 * layout::GiB)
    return make_error(EINVAL, "vmlinux: entry point {:#x} is {}", entry,
                      inside ? "above 4 GiB, beyond the identity map of the 64-bit entry" : "not inside any loaded segment");
  LoadedImage loaded = TRY(load_segments(mem, image, segments));
  return std::pair(loaded, entry);
}

Result<BootEntry> load_host_decompressed(const GuestMemory& mem, const BootConfig& cfg, const BzImage& bz) {
  if (bz.payload.empty()) return make_error(EINVAL, "bzImage: no payload (payload_length is 0) to decompress");
  auto vmlinux = TRY_CTX(decompress(bz.payload, mem.ram_bytes()), "bzImage payload");
  auto elf = parse_elf(vmlinux);
  if (!elf) return make_error(EINVAL, "bzImage: the decompressed payload is not a vmlinux ELF: {}", elf.error().context());
  // The kernel runs where it was linked: its runtime start is its lowest PT_LOAD (LOAD_PHYSICAL_ADDR),
  // and it needs init_size bytes from there before it reads the memory map.
  uint64_t runtime = UINT64_MAX;
  for (const auto& s : elf_load_segments(*elf))
    if (s.memsz != 0) runtime = std::min(runtime, s.paddr);
  Footprint need{runtime, runtime + bz.hdr.init_size};
  if (runtime != UINT64_MAX) TRY(check_footprint(mem, need, "the kernel (init_size from its link-time address)"));
  auto [loaded, entry] = TRY(load_vmlinux_segments(mem, vmlinux, *elf));
  LOG_INFO("Linux: host-decompressed vmlinux ({} bytes) runs at its link-time address {:#x} (no KASLR)",
           vmlinux.size(), loaded.low);
  Footprint kernel{std::min(loaded.low, need.start), std::max(loaded.high, need.end)};
  return finish(mem, cfg, params_from_bzimage(bz), kernel, entry);
}

Result<BootEntry> load_guest_decompressed(const GuestMemory& mem, const BootConfig& cfg, const BzImage& bz) {
  const setup_header& h = bz.hdr;
  uint64_t load = kBzImageLoadAddress, runtime = h.pref_address;
  if (bz.relocatable()) {
    // boot.rst, "init_size": runtime_start = align_up(load_address, kernel_alignment).
    load = align_up(std::max<uint64_t>(h.pref_address, kBzImageLoadAddress), h.kernel_alignment);
    runtime = load;
  } else if (runtime < kBzImageLoadAddress) {
    return make_error(EINVAL, "bzImage: a non-relocatable kernel with pref_address {:#x}, below 1 MiB", runtime);
  }
  Footprint at_runtime{runtime, runtime + h.init_size};
  if (!bz.relocatable())
    TRY(check_footprint(mem, at_runtime, "the non-relocatable kernel at its pref_address (init_size)"));
  else
    TRY(check_footprint(mem, at_runtime, "the kernel (init_size from its load address)"));
  Footprint kernel{std::min(load, runtime), std::max({load + bz.kernel.size(), at_runtime.end})};
  TRY(check_footprint(mem, kernel, "the protected-mode kernel"));
  std::vector<Segment> seg = {{"the protected-mode kernel", 0, bz.kernel.size(), load, bz.kernel.size()}};
  TRY(load_segments(mem, bz.kernel, seg));
  boot_params bp = params_from_bzimage(bz);
  // boot.rst, "relocatable_kernel": a loader that loads it elsewhere sets code32_start to the load address.
  bp.hdr.code32_start = uint32_t(load);
  LOG_INFO("Linux: compressed kernel at {:#x}, decompressed in the guest", load);
  return finish(mem, cfg, bp, kernel, load + kEntry64Offset);
}

}  // namespace

Result<uint64_t> place_initrd(const GuestMemory& mem, uint64_t size, uint64_t addr_max, uint64_t floor) {
  const auto& regions = mem.regions();
  for (auto r = regions.rbegin(); r != regions.rend(); ++r) {
    if (r->kind != RegionKind::Ram) continue;
    uint64_t hi = std::min(r->end().raw(), addr_max + 1);
    uint64_t lo = std::max(r->start.raw(), floor);
    if (hi < size || hi <= lo) continue;
    uint64_t at = (hi - size) & ~(kPageSize - 1);
    if (at >= lo) return at;
  }
  return make_error(EFAULT, "the initrd ({} bytes) does not fit in guest RAM between the kernel's end {:#x} and "
                    "initrd_addr_max {:#x}; give the guest more memory", size, floor, addr_max);
}

Result<BootEntry> load_linux_bzimage(const GuestMemory& mem, const BootConfig& cfg, const BzImage& bz) {
  TRY(check_kernel64(bz));
  TRY(check_modules(cfg));
  if (cfg.decompress == Decompress::Guest) return load_guest_decompressed(mem, cfg, bz);
  return load_host_decompressed(mem, cfg, bz);
}

Result<BootEntry> load_linux_vmlinux(const GuestMemory& mem, const BootConfig& cfg, const ElfImage& elf) {
  TRY(check_modules(cfg));
  auto [loaded, entry] = TRY(load_vmlinux_segments(mem, cfg.image, elf));
  Footprint kernel{loaded.low, loaded.high};
  TRY(check_footprint(mem, kernel, "the vmlinux"));
  return finish(mem, cfg, params_for_vmlinux(), kernel, entry);
}

}  // namespace evmm::boot
