#include "boot/decompress.h"

#include <bzlib.h>
#include <lz4.h>
#include <lzma.h>
#include <zlib.h>
#include <zstd.h>

#include <algorithm>
#include <cstring>

namespace evmm::boot {

namespace {

// Output grows in steps of this, up to max_out.
constexpr uint64_t kStep = 1 << 20;
// Enough for the kernel's xz (dictionary up to 32 MiB) and lzma (-9: 64 MiB) settings.
constexpr uint64_t kLzmaMemLimit = 256 << 20;
// lz4's legacy frame (lz4 -l, lib/decompress_unlz4.c): a magic, then blocks of a little-endian
// compressed size and data, each of which decompresses to at most 8 MiB.
constexpr uint32_t kLz4LegacyMagic = 0x184C2102;
constexpr uint64_t kLz4LegacyBlock = 8 << 20;

struct Magic {
  Compression kind;
  std::span<const uint8_t> bytes;
};
constexpr uint8_t kGzip[] = {0x1f, 0x8b}, kBzip2[] = {'B', 'Z', 'h'}, kLzma[] = {0x5d, 0x00, 0x00},
                  kXz[] = {0xfd, '7', 'z', 'X', 'Z', 0x00}, kLz4[] = {0x02, 0x21, 0x4c, 0x18},
                  kZstd[] = {0x28, 0xb5, 0x2f, 0xfd};
constexpr Magic kMagics[] = {{Compression::Gzip, kGzip}, {Compression::Bzip2, kBzip2}, {Compression::Lzma, kLzma},
                             {Compression::Xz, kXz},     {Compression::Lz4, kLz4},     {Compression::Zstd, kZstd}};

Error too_big(Compression c, uint64_t max_out) {
  return Error(E2BIG, fmt::format("{}: the payload decompresses to more than {} bytes (the guest's RAM); refused",
                                  to_string(c), max_out));
}

// Grows out for the next chunk of decompressed data; false when it is already max_out long.
bool grow(std::vector<uint8_t>& out, uint64_t max_out) {
  if (out.size() >= max_out) return false;
  out.resize(std::min<uint64_t>(out.size() + kStep, max_out));
  return true;
}

Result<std::vector<uint8_t>> gunzip(std::span<const uint8_t> in, uint64_t max_out) {
  z_stream z{};
  if (inflateInit2(&z, 16 + MAX_WBITS) != Z_OK) return make_error(ENOMEM, "gzip: inflateInit2 failed");
  std::vector<uint8_t> out;
  z.next_in = const_cast<Bytef*>(in.data());
  z.avail_in = uInt(std::min<uint64_t>(in.size(), UINT32_MAX));
  int rc = Z_OK;
  while (rc != Z_STREAM_END) {
    if (z.avail_out == 0) {
      uint64_t have = out.size();
      if (!grow(out, max_out)) break;
      z.next_out = out.data() + have;
      z.avail_out = uInt(out.size() - have);
    }
    rc = inflate(&z, Z_NO_FLUSH);
    if (rc == Z_BUF_ERROR && z.avail_in == 0) rc = Z_DATA_ERROR;
    if (rc != Z_OK && rc != Z_STREAM_END && rc != Z_BUF_ERROR) {
      std::string why = z.msg ? z.msg : (z.avail_in == 0 ? "the stream is truncated" : "corrupt data");
      inflateEnd(&z);
      return make_error(EINVAL, "gzip: {}", why);
    }
  }
  uint64_t total = z.total_out;
  inflateEnd(&z);
  if (rc != Z_STREAM_END) return tl::unexpected(too_big(Compression::Gzip, max_out));
  out.resize(total);
  return out;
}

Result<std::vector<uint8_t>> bunzip2(std::span<const uint8_t> in, uint64_t max_out) {
  bz_stream bz{};
  if (BZ2_bzDecompressInit(&bz, 0, 0) != BZ_OK) return make_error(ENOMEM, "bzip2: BZ2_bzDecompressInit failed");
  std::vector<uint8_t> out;
  uint64_t produced = 0;
  bz.next_in = const_cast<char*>(reinterpret_cast<const char*>(in.data()));
  bz.avail_in = unsigned(std::min<uint64_t>(in.size(), UINT32_MAX));
  int rc = BZ_OK;
  while (rc != BZ_STREAM_END) {
    if (bz.avail_out == 0) {
      if (!grow(out, max_out)) break;
      bz.next_out = reinterpret_cast<char*>(out.data() + produced);
      bz.avail_out = unsigned(out.size() - produced);
    }
    unsigned before = bz.avail_out;
    rc = BZ2_bzDecompress(&bz);
    produced += before - bz.avail_out;
    if (rc == BZ_OK && bz.avail_in == 0 && before == bz.avail_out) rc = BZ_UNEXPECTED_EOF;
    if (rc != BZ_OK && rc != BZ_STREAM_END) {
      BZ2_bzDecompressEnd(&bz);
      return make_error(EINVAL, "bzip2: {} (libbz2 error {})",
                        rc == BZ_UNEXPECTED_EOF ? "the stream is truncated" : "corrupt data", rc);
    }
  }
  BZ2_bzDecompressEnd(&bz);
  if (rc != BZ_STREAM_END) return tl::unexpected(too_big(Compression::Bzip2, max_out));
  out.resize(produced);
  return out;
}

Result<std::vector<uint8_t>> unlzma(std::span<const uint8_t> in, uint64_t max_out, Compression kind) {
  lzma_stream s = LZMA_STREAM_INIT;
  lzma_ret rc = kind == Compression::Xz ? lzma_stream_decoder(&s, kLzmaMemLimit, 0)
                                        : lzma_alone_decoder(&s, kLzmaMemLimit);
  if (rc != LZMA_OK) return make_error(ENOMEM, "{}: the liblzma decoder failed to start ({})", to_string(kind), int(rc));
  std::vector<uint8_t> out;
  s.next_in = in.data();
  s.avail_in = in.size();
  while (rc != LZMA_STREAM_END) {
    if (s.avail_out == 0) {
      uint64_t have = s.total_out;
      if (!grow(out, max_out)) break;
      s.next_out = out.data() + have;
      s.avail_out = out.size() - have;
    }
    // LZMA_FINISH: all input is here, so running out of it is a truncated stream (LZMA_BUF_ERROR).
    rc = lzma_code(&s, LZMA_FINISH);
    if (rc != LZMA_OK && rc != LZMA_STREAM_END) {
      const char* why = rc == LZMA_BUF_ERROR ? "the stream is truncated"
                        : rc == LZMA_MEMLIMIT_ERROR ? "its dictionary needs more than 256 MiB"
                        : rc == LZMA_FORMAT_ERROR || rc == LZMA_OPTIONS_ERROR ? "unsupported header"
                                                                             : "corrupt data";
      lzma_end(&s);
      return make_error(EINVAL, "{}: {} (liblzma error {})", to_string(kind), why, int(rc));
    }
  }
  uint64_t total = s.total_out;
  lzma_end(&s);
  if (rc != LZMA_STREAM_END) return tl::unexpected(too_big(kind, max_out));
  out.resize(total);
  return out;
}

uint32_t le32(std::span<const uint8_t> p) {
  uint32_t v;
  std::memcpy(&v, p.data(), 4);
  return v;
}

Result<std::vector<uint8_t>> unlz4_legacy(std::span<const uint8_t> in, uint64_t max_out) {
  std::vector<uint8_t> out;
  const size_t total = in.size();
  in = in.subspan(4);  // the magic, checked by detect_compression
  // Four bytes left at the end are the size the kernel's build appends, not a block.
  while (in.size() > 4) {
    uint32_t block = le32(in);
    in = in.subspan(4);
    if (block == kLz4LegacyMagic) continue;  // concatenated frames
    if (block > in.size())
      return make_error(EINVAL, "lz4: a block of {} bytes runs past the end of the payload ({} left)", block, in.size());
    uint64_t have = out.size();
    if (have >= max_out) return tl::unexpected(too_big(Compression::Lz4, max_out));
    uint64_t room = std::min(kLz4LegacyBlock, max_out - have);
    out.resize(have + room);
    int n = LZ4_decompress_safe(reinterpret_cast<const char*>(in.data()), reinterpret_cast<char*>(out.data() + have),
                                int(block), int(room));
    if (n < 0) {
      // The block may be fine but need more room than max_out leaves.
      if (room < kLz4LegacyBlock) return tl::unexpected(too_big(Compression::Lz4, max_out));
      return make_error(EINVAL, "lz4: corrupt block at payload offset {:#x}", total - in.size());
    }
    out.resize(have + uint64_t(n));
    in = in.subspan(block);
  }
  if (in.size() != 0 && in.size() != 4) return make_error(EINVAL, "lz4: the stream is truncated");
  return out;
}

Result<std::vector<uint8_t>> unzstd(std::span<const uint8_t> in, uint64_t max_out) {
  ZSTD_DCtx* ctx = ZSTD_createDCtx();
  if (!ctx) return make_error(ENOMEM, "zstd: ZSTD_createDCtx failed");
  std::vector<uint8_t> out;
  ZSTD_inBuffer src{in.data(), in.size(), 0};
  ZSTD_outBuffer dst{nullptr, 0, 0};
  size_t rc = 1;  // > 0: the frame is not complete
  while (rc != 0) {
    if (dst.pos == dst.size) {
      if (!grow(out, max_out)) break;
      dst = {out.data(), out.size(), dst.pos};
    }
    size_t in_before = src.pos, out_before = dst.pos;
    rc = ZSTD_decompressStream(ctx, &dst, &src);
    if (ZSTD_isError(rc)) {
      std::string why = ZSTD_getErrorName(rc);
      ZSTD_freeDCtx(ctx);
      return make_error(EINVAL, "zstd: {}", why);
    }
    if (rc != 0 && src.pos == src.size && in_before == src.pos && out_before == dst.pos && dst.pos < dst.size) {
      ZSTD_freeDCtx(ctx);
      return make_error(EINVAL, "zstd: the stream is truncated");
    }
  }
  ZSTD_freeDCtx(ctx);
  if (rc != 0) return tl::unexpected(too_big(Compression::Zstd, max_out));
  out.resize(dst.pos);
  return out;
}

}  // namespace

const char* to_string(Compression c) {
  switch (c) {
    case Compression::Gzip: return "gzip";
    case Compression::Bzip2: return "bzip2";
    case Compression::Lzma: return "lzma";
    case Compression::Xz: return "xz";
    case Compression::Lz4: return "lz4";
    case Compression::Zstd: return "zstd";
  }
  return "unknown";
}

std::optional<Compression> detect_compression(std::span<const uint8_t> data) {
  for (const auto& m : kMagics)
    if (data.size() >= m.bytes.size() && std::equal(m.bytes.begin(), m.bytes.end(), data.begin())) return m.kind;
  return std::nullopt;
}

Result<std::vector<uint8_t>> decompress(std::span<const uint8_t> data, uint64_t max_out) {
  auto kind = detect_compression(data);
  if (!kind)
    return make_error(ENOEXEC, "the payload is in no format evmm can decompress (gzip, bzip2, lzma, xz, lz4, zstd)");
  switch (*kind) {
    case Compression::Gzip: return gunzip(data, max_out);
    case Compression::Bzip2: return bunzip2(data, max_out);
    case Compression::Lzma:
    case Compression::Xz: return unlzma(data, max_out, *kind);
    case Compression::Lz4: return unlz4_legacy(data, max_out);
    case Compression::Zstd: return unzstd(data, max_out);
  }
  return make_error(ENOEXEC, "unknown compression");
}

}  // namespace evmm::boot
