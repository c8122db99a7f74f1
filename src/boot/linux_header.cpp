#include "boot/linux_header.h"

#include <cstddef>
#include <cstring>

namespace evmm::boot {

namespace {

// setup_header is copied into boot_params at 0x1f1; the next field there (edd_mbr_sig_buffer) is at
// 0x290, so no header may run past it (boot.rst, "The kernel_info": the 2-byte jump bounds it).
constexpr uint64_t kHeaderRoomEnd = offsetof(boot_params, edd_mbr_sig_buffer);
// The 2.10 fields end with init_size; a header shorter than that cannot be a 2.10 header.
constexpr uint64_t kHeader210End = kSetupHeaderOffset + offsetof(setup_header, init_size) + sizeof(uint32_t);

std::string protocol(uint16_t v) { return fmt::format("{}.{:02}", v >> 8, v & 0xff); }

}  // namespace

bool is_bzimage(std::span<const uint8_t> image) {
  uint32_t magic = 0;
  if (image.size() < kHdrSOffset + sizeof magic) return false;
  std::memcpy(&magic, image.data() + kHdrSOffset, sizeof magic);
  return magic == kHdrSMagic;
}

Result<BzImage> parse_bzimage(std::span<const uint8_t> image) {
  if (!is_bzimage(image)) return make_error(EINVAL, "bzImage: no \"HdrS\" setup header signature at {:#x}", kHdrSOffset);
  // boot.rst, "64-bit Boot Protocol": the setup header ends at 0x202 + the byte at 0x201.
  const uint64_t end = 0x202 + uint64_t(image[0x201]);
  if (end > kHeaderRoomEnd)
    return make_error(EINVAL, "bzImage: the setup header claims to end at {:#x}, past its room in boot_params ({:#x})",
                      end, kHeaderRoomEnd);
  if (end > image.size())
    return make_error(EINVAL, "bzImage: the setup header ends at {:#x}, past the end of the {}-byte file", end,
                      image.size());
  BzImage bz;
  bz.header_bytes = image.subspan(kSetupHeaderOffset, end - kSetupHeaderOffset);
  std::memcpy(&bz.hdr, bz.header_bytes.data(), std::min(bz.header_bytes.size(), sizeof bz.hdr));
  const setup_header& h = bz.hdr;

  if (h.version < kMinProtocol)
    return make_error(EINVAL, "bzImage: boot protocol {} is older than {}, the oldest evmm loads",
                      protocol(h.version), protocol(kMinProtocol));
  if (end < kHeader210End)
    return make_error(EINVAL, "bzImage: the setup header ends at {:#x}, before the fields of protocol {} it claims",
                      end, protocol(h.version));
  if (!(h.loadflags & LOADED_HIGH))
    return make_error(EINVAL, "bzImage: LOADED_HIGH is clear in loadflags: a zImage, which loads below 1 MiB");
  // boot.rst: "If this field is 0, the real value is 4"; no kernel of protocol 2.10+ has so little
  // setup code, so a 0 here means a damaged header rather than an old kernel.
  if (h.setup_sects == 0)
    return make_error(EINVAL, "bzImage: setup_sects is 0 (read as 4, a size only pre-2.00 kernels had)");
  const uint64_t kernel_offset = (uint64_t(h.setup_sects) + 1) * 512;
  if (kernel_offset >= image.size())
    return make_error(EINVAL, "bzImage: setup_sects {} puts the protected-mode kernel at {:#x}, past the end of the "
                      "{}-byte file", unsigned(h.setup_sects), kernel_offset, image.size());
  bz.kernel = image.subspan(kernel_offset);
  if (uint64_t(h.syssize) * 16 > bz.kernel.size())
    return make_error(EINVAL, "bzImage: the file is truncated: syssize says {} bytes of protected-mode kernel, the "
                      "file has {}", uint64_t(h.syssize) * 16, bz.kernel.size());
  if (uint64_t(h.payload_offset) + h.payload_length > bz.kernel.size())
    return make_error(EINVAL, "bzImage: the payload [{:#x}, +{:#x}) runs past the protected-mode kernel ({:#x} bytes)",
                      uint32_t(h.payload_offset), uint32_t(h.payload_length), bz.kernel.size());
  bz.payload = bz.kernel.subspan(h.payload_offset, h.payload_length);
  if (h.relocatable_kernel && (h.kernel_alignment == 0 || (h.kernel_alignment & (h.kernel_alignment - 1))))
    return make_error(EINVAL, "bzImage: kernel_alignment {:#x} of a relocatable kernel is not a power of two",
                      uint32_t(h.kernel_alignment));
  return bz;
}

}  // namespace evmm::boot
