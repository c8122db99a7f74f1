// The PVH loader (boot/pvh.h): the ELF parser, the note search for XEN_ELFNOTE_PHYS32_ENTRY, and
// loading with a module, command line and hvm_start_info. Input: the image file.
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
  if (loaded) FUZZ_CHECK(loaded->rip == **entry);
  return 0;
}
