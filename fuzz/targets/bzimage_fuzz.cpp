// The Linux bzImage loader (boot/linux.h): the setup-header parser, host decompression of the
// payload in every format the magics select, and the 64-bit boot protocol load with host and with
// guest decompression, a command line and an initrd. Input: the image file.
// Beyond check_load's codes: decompression stays under its cap; a load that succeeds enters 64-bit
// mode with boot_params in RAM that says what the loader decided and holds the initrd where it says.
#include <asm/bootparam.h>

#include "boot/decompress.h"
#include "boot/linux.h"
#include "boot/linux_header.h"
#include "loader_check.h"

using namespace evmm;

extern "C" int LLVMFuzzerInitialize(int*, char***) {
  fuzz_quiet_logs();
  return 0;
}

namespace {

constexpr uint64_t kCap = 1 << 20;

void check_linux_load(const GuestMemory& mem, const Result<BootEntry>& r, const fuzz::LoaderExtras& extras) {
  if (!r) {
    int code = r.error().code();
    FUZZ_CHECK(code == EINVAL || code == ENOEXEC || code == EFAULT || code == E2BIG);
    FUZZ_CHECK(!r.error().message().empty());
    return;
  }
  FUZZ_CHECK(r->format == ImageFormat::Linux && r->mode == EntryMode::Long64);
  FUZZ_CHECK(r->rip < 4 * layout::GiB && mem.contains(GuestAddress(r->rip), 1));
  auto bp = mem.read_obj<boot_params>(GuestAddress(r->rsi));
  FUZZ_CHECK(bp);
  FUZZ_CHECK(bp->hdr.type_of_loader == 0xff && (bp->hdr.loadflags & LOADED_HIGH) && bp->sentinel == 0);
  FUZZ_CHECK(bp->e820_entries > 0 && bp->e820_entries <= E820_MAX_ENTRIES_ZEROPAGE);
  FUZZ_CHECK(bp->hdr.ramdisk_size == extras.initrd.size() && bp->hdr.ramdisk_image % 4096 == 0);
  FUZZ_CHECK(uint64_t(bp->hdr.ramdisk_image) + bp->hdr.ramdisk_size - 1 <= bp->hdr.initrd_addr_max);
  fuzz::check_module(mem, bp->hdr.ramdisk_image, bp->hdr.ramdisk_size, extras.initrd);
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  std::span<const uint8_t> image(data, size);
  if (!boot::is_bzimage(image)) return 0;
  auto bz = boot::parse_bzimage(image);
  if (!bz) {
    FUZZ_CHECK(bz.error().code() == EINVAL);
    return 0;
  }
  FUZZ_CHECK(bz->payload.data() >= image.data() && bz->payload.data() + bz->payload.size() <= image.data() + size);
  auto out = boot::decompress(bz->payload, kCap);
  if (out) FUZZ_CHECK(out->size() <= kCap);
  else FUZZ_CHECK(out.error().code() == EINVAL || out.error().code() == E2BIG || out.error().code() == ENOEXEC);

  fuzz::LoaderExtras extras;
  for (Decompress d : {Decompress::Host, Decompress::Guest}) {
    GuestMemory mem = fuzz::loader_memory();
    BootConfig cfg = extras.config(image);
    cfg.decompress = d;
    check_linux_load(mem, boot::load_linux_bzimage(mem, cfg, *bz), extras);
  }
  return 0;
}
