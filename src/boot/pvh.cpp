#include "boot/pvh.h"

#include <cstdint>  // the Xen headers use uint32_t without including it
#include <cstring>

#include <xen/arch-x86/hvm/start_info.h>
#include <xen/elfnote.h>

#include "boot/image.h"
#include "boot/placement.h"
#include "memory/layout.h"

namespace evmm::boot {

Result<std::optional<uint64_t>> find_pvh_entry(const ElfImage& elf, std::span<const uint8_t> image) {
  auto desc = TRY(find_elf_note(elf, image, "Xen", XEN_ELFNOTE_PHYS32_ENTRY));
  if (!desc) return std::optional<uint64_t>();
  if (desc->size() != 4 && desc->size() != 8)
    return make_error(EINVAL, "PVH: XEN_ELFNOTE_PHYS32_ENTRY has a {}-byte descriptor; expected 4 or 8", desc->size());
  uint64_t entry = 0;
  std::memcpy(&entry, desc->data(), desc->size());
  if (entry >= 4 * layout::GiB)
    return make_error(EINVAL, "PVH: XEN_ELFNOTE_PHYS32_ENTRY {:#x} is above 4 GiB, out of reach in 32-bit mode", entry);
  return std::optional(entry);
}

Result<BootEntry> load_pvh(const GuestMemory& mem, const BootConfig& cfg, const ElfImage& elf, uint64_t entry) {
  TRY(check_cmdlines(cfg));
  auto segments = elf_load_segments(elf);
  TRY_CTX(check_entry32(entry, segments), "PVH");
  LoadedImage loaded = TRY(load_segments(mem, cfg.image, segments));

  BootPlacement placed = TRY(place_boot_data(mem, segments, BootData::Protocol, EntryMode::Protected32));
  GuestArena scratch = make_scratch(mem, placed);
  auto modules = TRY(place_modules(mem, cfg.modules, modules_start(loaded, placed), UINT64_MAX, scratch));
  std::vector<hvm_modlist_entry> modlist;
  for (const auto& m : modules)
    modlist.push_back({.paddr = m.addr, .size = m.size, .cmdline_paddr = m.cmdline_addr, .reserved = 0});
  std::vector<hvm_memmap_table_entry> memmap;
  for (const auto& e : build_e820(mem)) memmap.push_back({.addr = e.addr, .size = e.size, .type = e.type, .reserved = 0});

  hvm_start_info info{};
  info.magic = XEN_HVM_START_MAGIC_VALUE;
  info.version = 1;  // memmap_paddr and memmap_entries are present
  info.nr_modules = uint32_t(modlist.size());
  info.modlist_paddr = modlist.empty() ? 0 : TRY(scratch.put_array(modlist, 8));
  info.cmdline_paddr = TRY(write_cmdline(mem, cfg.cmdline, placed.cmdline));
  info.rsdp_paddr = kRsdpAddress;
  info.memmap_paddr = TRY(scratch.put_array(memmap, 8));
  info.memmap_entries = uint32_t(memmap.size());
  TRY_CTX(mem.write_obj(GuestAddress(placed.info), info), "writing the PVH start info");

  return BootEntry{.format = ImageFormat::Pvh, .mode = EntryMode::Protected32, .rip = entry, .rbx = placed.info, .gdt = placed.gdt};
}

}  // namespace evmm::boot
