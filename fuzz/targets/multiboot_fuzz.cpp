// The multiboot v1 loader (boot/multiboot.h): header search, the a.out kludge and ELF loading, the
// module, command line and information structure. Input: the image file.
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
  if (entry) FUZZ_CHECK(entry->rax == boot::kMultibootBootloaderMagic);
  return 0;
}
