// The PVH loader (boot/pvh.h): the ELF parser, the note search for XEN_ELFNOTE_PHYS32_ENTRY, and
// loading with a module, command line and hvm_start_info. Input: the image file.
// Beyond check_load: a loaded image's segments and the module are in guest memory intact.
#include <cstdint>  // the Xen headers use uint32_t without including it

#include <xen/arch-x86/hvm/start_info.h>

#include "boot/elf.h"
#include "boot/pvh.h"
#include "loader_check.h"

using namespace evmm;

extern "C" int LLVMFuzzerInitialize(int*, char***) {
  fuzz_quiet_logs();
  return 0;
}

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  std::span<const uint8_t> image(data, size);
  auto elf = boot::parse_elf(image);
  if (!elf) {
    FUZZ_CHECK(elf.error().code() == EINVAL);
    return 0;
  }
  auto entry = boot::find_pvh_entry(*elf, image);
  if (!entry) {
    FUZZ_CHECK(entry.error().code() == EINVAL);
    return 0;
  }
  if (!*entry) return 0;
  FUZZ_CHECK(**entry < 4 * layout::GiB);
  GuestMemory mem = fuzz::loader_memory();
  fuzz::LoaderExtras extras;
  auto loaded = boot::load_pvh(mem, extras.config(image), *elf, **entry);
  fuzz::check_load(mem, loaded, ImageFormat::Pvh);
  if (!loaded) return 0;
  FUZZ_CHECK(loaded->rip == **entry);
  fuzz::check_elf_loaded(mem, image, *elf);
  auto info = mem.read_obj<hvm_start_info>(GuestAddress(loaded->rbx));
  FUZZ_CHECK(info && info->magic == XEN_HVM_START_MAGIC_VALUE && info->nr_modules == 1);
  auto mod = mem.read_obj<hvm_modlist_entry>(GuestAddress(info->modlist_paddr));
  FUZZ_CHECK(mod);
  fuzz::check_module(mem, mod->paddr, mod->size, extras.initrd);
  return 0;
}
