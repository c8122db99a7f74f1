// The ELF parser (boot/elf.h) and the whole of load_image (boot/boot.h), which detects the format and
// takes plain ELF images through the ELF loader. Input: the image file.
// Invariants: every segment parse_elf returns lies inside the file, and a PT_LOAD's file size does
// not exceed its memory size; a note found lies inside the file; load_image's result is checked as
// for every loader, in the format detection chose, and a plain ELF's segments are in memory intact.
#include <elf.h>

#include "boot/elf.h"
#include "loader_check.h"

using namespace evmm;

extern "C" int LLVMFuzzerInitialize(int*, char***) {
  fuzz_quiet_logs();
  return 0;
}

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  std::span<const uint8_t> image(data, size);
  if (auto elf = boot::parse_elf(image)) {
    for (const auto& s : elf->segments) {
      FUZZ_CHECK(s.offset <= size && s.filesz <= size - s.offset);
      if (s.type == PT_LOAD) FUZZ_CHECK(s.filesz <= s.memsz);
    }
    if (auto note = boot::find_elf_note(*elf, image, "GNU", NT_GNU_BUILD_ID); note && *note) {
      FUZZ_CHECK((*note)->data() >= data && (*note)->data() + (*note)->size() <= data + size);
    }
  } else {
    FUZZ_CHECK(elf.error().code() == EINVAL);
  }

  GuestMemory mem = fuzz::loader_memory();
  BootConfig cfg;
  cfg.image = image;
  auto entry = load_image(mem, cfg);
  fuzz::check_load(mem, entry, entry ? entry->format : ImageFormat::ElfPlain);
  if (entry && entry->format == ImageFormat::ElfPlain) fuzz::check_elf_loaded(mem, image, *boot::parse_elf(image));
  return 0;
}
