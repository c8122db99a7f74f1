// Shared by the image-loader targets: the guest memory an image is loaded into, and what every
// load result must satisfy (boot/boot.h, boot/image.h).
#pragma once

#include <cerrno>
#include <cstdint>
#include <string>
#include <vector>

#include "boot/boot.h"
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
// code inside guest RAM above 1 MiB (every loaded segment lies there), in the format expected.
inline void check_load(const GuestMemory& mem, const Result<BootEntry>& r, ImageFormat format) {
  if (!r) {
    int code = r.error().code();
    FUZZ_CHECK(code == EINVAL || code == ENOEXEC || code == EFAULT || code == E2BIG);
    FUZZ_CHECK(!r.error().message().empty());
    return;
  }
  FUZZ_CHECK(r->format == format);
  FUZZ_CHECK(r->mode == EntryMode::Protected32);
  FUZZ_CHECK(r->rip < 4 * layout::GiB && r->rip >= layout::kHighRamStart);
  FUZZ_CHECK(mem.contains(GuestAddress(r->rip), 1));
  if (format == ImageFormat::Multiboot || format == ImageFormat::Pvh) FUZZ_CHECK(r->rbx == layout::kZeroPage);
}

}  // namespace evmm::fuzz
