// Shared by the image-loader targets: the guest memory an image is loaded into, and what every
// load result must satisfy (boot/boot.h, boot/image.h).
#pragma once

#include <elf.h>

#include <cerrno>
#include <cstdint>
#include <string>
#include <vector>

#include "boot/boot.h"
#include "boot/elf.h"
#include "fuzz_input.h"
#include "memory/guest_memory.h"
#include "memory/layout.h"

namespace evmm::fuzz {

// 4 MiB of PC RAM: room for a few small segments above 1 MiB and a module after them. Made afresh
// for every input, so that nothing one load leaves behind can reach the next.
inline GuestMemory loader_memory() {
  auto mem = GuestMemory::create_pc(4 * layout::MiB);
  FUZZ_CHECK(mem);
  return std::move(*mem);
}

// A command line and one module, as `evmm run --cmdline ... --initrd ...` would pass them.
struct LoaderExtras {
  std::vector<uint8_t> initrd = std::vector<uint8_t>(3000, 0x5a);
  BootConfig config(std::span<const uint8_t> image) const {
    BootConfig cfg;
    cfg.image = image;
    cfg.cmdline = "console=ttyS0 fuzz";
    cfg.modules.push_back({initrd, "initrd"});
    return cfg;
  }
};

// A failure carries one of the codes load_image documents and a message; a success enters 32-bit
// code inside guest RAM above page 0 (no segment may use it), in the format expected, with the
// information structure placed in RAM below 4 GiB.
inline void check_load(const GuestMemory& mem, const Result<BootEntry>& r, ImageFormat format) {
  if (!r) {
    int code = r.error().code();
    FUZZ_CHECK(code == EINVAL || code == ENOEXEC || code == EFAULT || code == E2BIG);
    FUZZ_CHECK(!r.error().message().empty());
    return;
  }
  FUZZ_CHECK(r->format == format);
  FUZZ_CHECK(r->mode == EntryMode::Protected32);
  FUZZ_CHECK(r->rip < 4 * layout::GiB && r->rip >= 0x1000);
  FUZZ_CHECK(mem.contains(GuestAddress(r->rip), 1));
  if (format == ImageFormat::Multiboot || format == ImageFormat::Pvh)
    FUZZ_CHECK(r->rbx < 4 * layout::GiB && r->rbx != 0 && mem.contains(GuestAddress(r->rbx), 0x1000));
  FUZZ_CHECK(r->gdt < 4 * layout::GiB && mem.contains(GuestAddress(r->gdt), 32));
}

// After a successful load, [paddr, +filesz) holds the file's bytes from offset and the rest up to
// memsz reads zero: nothing written later (modules, boot data) landed on the image.
inline void check_loaded(const GuestMemory& mem, std::span<const uint8_t> image, uint64_t offset, uint64_t filesz,
                         uint64_t paddr, uint64_t memsz) {
  std::vector<uint8_t> got(memsz);
  FUZZ_CHECK(mem.read(GuestAddress(paddr), got));
  std::vector<uint8_t> want(memsz, 0);
  std::copy_n(image.begin() + static_cast<ptrdiff_t>(offset), filesz, want.begin());
  FUZZ_CHECK(got == want);
}

inline void check_elf_loaded(const GuestMemory& mem, std::span<const uint8_t> image, const boot::ElfImage& elf) {
  for (const auto& s : elf.segments)
    if (s.type == PT_LOAD && s.memsz > 0) check_loaded(mem, image, s.offset, s.filesz, s.paddr, s.memsz);
}

// A module is in guest memory byte for byte, wherever the loader put it.
inline void check_module(const GuestMemory& mem, uint64_t addr, uint64_t size, std::span<const uint8_t> want) {
  FUZZ_CHECK(size == want.size());
  std::vector<uint8_t> got(size);
  FUZZ_CHECK(mem.read(GuestAddress(addr), got));
  FUZZ_CHECK(std::equal(got.begin(), got.end(), want.begin(), want.end()));
}

}  // namespace evmm::fuzz
