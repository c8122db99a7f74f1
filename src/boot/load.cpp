// Format detection and dispatch. The order follows what each format can be mistaken for: a bzImage
// is checked by its setup header first; an ELF with a PVH note is PVH even if it also carries a
// multiboot header (as Xen itself does); a multiboot header decides over plain ELF. BootConfig's
// protocol overrides the choice for Linux: an ELF vmlinux goes through the 64-bit boot protocol
// with BootProtocol::Linux.
#include "base/log.h"
#include "boot/boot.h"
#include "boot/elf.h"
#include "boot/image.h"
#include "boot/linux.h"
#include "boot/linux_header.h"
#include "boot/multiboot.h"
#include "boot/placement.h"
#include "boot/pvh.h"

namespace evmm {

namespace {

Result<BootEntry> load_plain_elf(const GuestMemory& mem, const BootConfig& cfg, const boot::ElfImage& elf) {
  // Entered like Xen's HVM domain builder enters hvmloader: 32-bit flat, nothing passed.
  if (!cfg.cmdline.empty() || !cfg.modules.empty())
    LOG_WARN("plain ELF image: it has no boot protocol, so the command line and modules are not passed to it");
  auto segments = boot::elf_load_segments(elf);
  uint64_t entry = boot::elf_entry_paddr(elf);
  TRY(boot::check_entry32(entry, segments));
  TRY(boot::load_segments(mem, cfg.image, segments));
  auto placed = TRY(boot::place_boot_data(mem, segments, boot::BootData::GdtOnly, EntryMode::Protected32));
  return BootEntry{.format = ImageFormat::ElfPlain, .mode = EntryMode::Protected32, .rip = entry, .gdt = placed.gdt};
}

Result<BootEntry> detect_and_load(const GuestMemory& mem, const BootConfig& cfg) {
  auto image = cfg.image;
  if (image.empty()) return make_error(ENOEXEC, "the image is empty");
  if (boot::is_bzimage(image)) {
    if (cfg.protocol == BootProtocol::Pvh)
      return make_error(EINVAL, "a Linux bzImage has no PVH entry; boot it with --boot linux (or auto)");
    return boot::load_linux_bzimage(mem, cfg, TRY(boot::parse_bzimage(image)));
  }
  if (cfg.decompress == Decompress::Guest)
    return make_error(EINVAL, "in-guest decompression (--decompress guest) needs a Linux bzImage; this image is not one");

  const bool is_elf = boot::has_elf_magic(image);
  Result<boot::ElfImage> elf = is_elf ? boot::parse_elf(image) : make_error(ENOEXEC, "not ELF");
  if (elf) {
    if (cfg.protocol == BootProtocol::Linux) return boot::load_linux_vmlinux(mem, cfg, *elf);
    if (auto entry = TRY(boot::find_pvh_entry(*elf, image))) return boot::load_pvh(mem, cfg, *elf, *entry);
    if (cfg.protocol == BootProtocol::Pvh)
      return make_error(EINVAL, "the ELF image has no PVH entry note (XEN_ELFNOTE_PHYS32_ENTRY) for --boot pvh");
  }
  if (cfg.protocol != BootProtocol::Auto) {
    if (is_elf) return tl::unexpected(elf.error());
    return make_error(EINVAL, "--boot {} needs {}; this image is neither", cfg.protocol == BootProtocol::Linux ? "linux" : "pvh",
                      cfg.protocol == BootProtocol::Linux ? "a bzImage or an ELF vmlinux" : "an ELF image with a PVH note");
  }
  if (auto header = TRY(boot::find_multiboot_header(image))) return boot::load_multiboot(mem, cfg, *header, elf);
  if (elf) return load_plain_elf(mem, cfg, *elf);
  if (is_elf) return tl::unexpected(elf.error());
  return make_error(ENOEXEC, "unrecognised image format: not ELF, multiboot or a Linux bzImage");
}

}  // namespace

const char* to_string(ImageFormat f) {
  switch (f) {
    case ImageFormat::Multiboot: return "multiboot";
    case ImageFormat::Pvh: return "PVH";
    case ImageFormat::ElfPlain: return "ELF";
    case ImageFormat::Linux: return "Linux";
  }
  return "unknown";
}

Result<BootEntry> load_image(const GuestMemory& mem, const BootConfig& cfg) {
  auto entry = detect_and_load(mem, cfg);
  if (!entry) return tl::unexpected(entry.error().wrap("loading the kernel image"));
  LOG_DEBUG("loaded a {} image ({} bytes), entry {:#x}", to_string(entry->format), cfg.image.size(), entry->rip);
  return entry;
}

}  // namespace evmm
