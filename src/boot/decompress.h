// Decompressing a bzImage's payload on the host (boot.rst, "payload_offset": the formats a kernel
// may be built with, told apart by their magic numbers), with Debian's libraries for each.
//
// Rules:
//  - one stream is decoded; bytes after its end are ignored (the kernel's build appends the
//    uncompressed size as four bytes to all but gzip);
//  - the output never grows past max_out: a stream that would is refused (E2BIG), so a small
//    image cannot make evmm allocate more than the guest's RAM;
//  - ENOEXEC for data with none of the magics, EINVAL for a corrupt or truncated stream, both
//    with the format's name and the library's reason.
#pragma once

#include <cstdint>
#include <optional>
#include <span>
#include <vector>

#include "base/result.h"

namespace evmm::boot {

enum class Compression { Gzip, Bzip2, Lzma, Xz, Lz4, Zstd };

const char* to_string(Compression c);

std::optional<Compression> detect_compression(std::span<const uint8_t> data);

Result<std::vector<uint8_t>> decompress(std::span<const uint8_t> data, uint64_t max_out);

}  // namespace evmm::boot
