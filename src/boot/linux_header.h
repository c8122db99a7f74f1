// The setup header of a Linux bzImage (Documentation/x86/boot.rst, "The Real-Mode Kernel Header"),
// validated once; the Linux loader (linux.h) and boot_params (linux_params.h) read the result.
//
// Refused, each with its own one-line EINVAL: a header past the end of the file or of its room in
// boot_params, protocol older than 2.10, LOADED_HIGH clear (a zImage), setup_sects 0, a payload or
// a syssize outside the file, a relocatable kernel whose kernel_alignment is not a power of two.
#pragma once

#include <asm/bootparam.h>

#include <cstdint>
#include <span>

#include "base/result.h"

namespace evmm::boot {

// "HdrS" at 0x202 marks a kernel with a setup header (protocol 2.00+).
constexpr uint64_t kSetupHeaderOffset = 0x1f1;
constexpr uint64_t kHdrSOffset = 0x202;
constexpr uint32_t kHdrSMagic = 0x53726448;  // "HdrS" read little-endian
constexpr uint16_t kBootFlag = 0xAA55;
constexpr uint16_t kMinProtocol = 0x020a;
// The protected-mode kernel's 64-bit entry point, relative to where it is loaded (boot.rst,
// "64-bit Boot Protocol"; present when xloadflags has XLF_KERNEL_64).
constexpr uint64_t kEntry64Offset = 0x200;

struct BzImage {
  setup_header hdr{};                     // as in the file; fields past its end read zero
  std::span<const uint8_t> header_bytes;  // 0x1f1 up to 0x202 + the byte at 0x201
  std::span<const uint8_t> kernel;        // the protected-mode kernel: (setup_sects + 1) * 512 onwards
  std::span<const uint8_t> payload;       // kernel[payload_offset, +payload_length); empty if none
  uint16_t version() const { return hdr.version; }
  bool relocatable() const { return hdr.relocatable_kernel != 0; }
};

bool is_bzimage(std::span<const uint8_t> image);

Result<BzImage> parse_bzimage(std::span<const uint8_t> image);

}  // namespace evmm::boot
