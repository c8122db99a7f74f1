// The multiboot v1 loader (boot/multiboot.h): header search, the a.out kludge and ELF loading, the
// module, command line and information structure. Input: the image file.
// Beyond check_load: a loaded image (by its kludge fields or its ELF segments) and the module are
// in guest memory intact, and the information structure lists the module.
#include "boot/elf.h"
#include "boot/multiboot.h"
#include "loader_check.h"

using namespace evmm;

extern "C" int LLVMFuzzerInitialize(int*, char***) {
  fuzz_quiet_logs();
  return 0;
}

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  std::span<const uint8_t> image(data, size);
  auto header = boot::find_multiboot_header(image);
  if (!header) {
    FUZZ_CHECK(header.error().code() == EINVAL);
    return 0;
  }
  if (!*header) return 0;
  FUZZ_CHECK((*header)->offset % 4 == 0 && (*header)->offset + 12 <= std::min<size_t>(size, boot::kMultibootSearchLimit));
  FUZZ_CHECK((*header)->hdr.magic == boot::kMultibootHeaderMagic);

  // As load_image does: the ELF headers are used when the header has no address fields.
  Result<boot::ElfImage> elf = boot::has_elf_magic(image) ? boot::parse_elf(image) : make_error(ENOEXEC, "not ELF");
  GuestMemory mem = fuzz::loader_memory();
  fuzz::LoaderExtras extras;
  auto entry = boot::load_multiboot(mem, extras.config(image), **header, elf);
  fuzz::check_load(mem, entry, ImageFormat::Multiboot);
  if (!entry) return 0;
  FUZZ_CHECK(entry->rax == boot::kMultibootBootloaderMagic);

  const boot::MultibootHeader& h = (*header)->hdr;
  if (h.flags & uint32_t(boot::MultibootFlag::AoutKludge)) {
    // §3.1.3: the file from header_addr - load_addr before the header, up to load_end_addr (or the
    // end of the file), then zeros up to bss_end_addr.
    uint64_t load_off = (*header)->offset - (h.header_addr - h.load_addr);
    uint64_t filesz = h.load_end_addr ? h.load_end_addr - h.load_addr : size - load_off;
    uint64_t memsz = h.bss_end_addr ? h.bss_end_addr - h.load_addr : filesz;
    fuzz::check_loaded(mem, image, load_off, filesz, h.load_addr, memsz);
  } else {
    fuzz::check_elf_loaded(mem, image, *elf);
  }
  auto info = mem.read_obj<boot::MultibootInfo>(GuestAddress(entry->rbx));
  FUZZ_CHECK(info && info->mods_count == 1);
  auto mod = mem.read_obj<boot::MultibootModule>(GuestAddress(info->mods_addr));
  FUZZ_CHECK(mod && mod->mod_end >= mod->mod_start);
  fuzz::check_module(mem, mod->mod_start, mod->mod_end - mod->mod_start, extras.initrd);
  return 0;
}
