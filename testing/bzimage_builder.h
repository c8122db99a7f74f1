// Synthetic Linux bzImages for the boot tests and fuzz seeds: a setup header with the fields a
// 2.15 x86-64 kernel has, and a payload compressed here with the same libraries evmm decompresses
// with, framed as the kernel's build frames it (lz4's legacy frame, the size appended but to gzip).
#pragma once

#include <asm/bootparam.h>
#include <bzlib.h>
#include <lz4.h>
#include <lzma.h>
#include <zlib.h>
#include <zstd.h>

#include <cstddef>
#include <cstdint>
#include <cstring>
#include <stdexcept>
#include <vector>

#include "boot/decompress.h"

namespace evmm::boot::test_images {

using BzBytes = std::vector<uint8_t>;

// The offset of a setup_header field in the image file (and in boot_params).
#define BZ_HDR_OFF(field) (0x1f1 + offsetof(setup_header, field))

inline void bz_put32(BzBytes& b, uint32_t v) {
  for (int i = 0; i < 4; ++i) b.push_back(uint8_t(v >> (8 * i)));
}

inline BzBytes compress(Compression c, const BzBytes& in) {
  BzBytes out;
  switch (c) {
    case Compression::Gzip: {
      z_stream z{};
      if (deflateInit2(&z, 9, Z_DEFLATED, 16 + MAX_WBITS, 8, Z_DEFAULT_STRATEGY) != Z_OK) throw std::runtime_error("zlib");
      out.resize(deflateBound(&z, in.size()) + 64);
      z.next_in = const_cast<Bytef*>(in.data());
      z.avail_in = uInt(in.size());
      z.next_out = out.data();
      z.avail_out = uInt(out.size());
      if (deflate(&z, Z_FINISH) != Z_STREAM_END) throw std::runtime_error("deflate");
      out.resize(z.total_out);
      deflateEnd(&z);
      return out;  // gzip carries its size itself: the kernel's build appends none
    }
    case Compression::Bzip2: {
      unsigned n = unsigned(in.size() + in.size() / 100 + 600);
      out.resize(n);
      if (BZ2_bzBuffToBuffCompress(reinterpret_cast<char*>(out.data()), &n,
                                   const_cast<char*>(reinterpret_cast<const char*>(in.data())), unsigned(in.size()), 9,
                                   0, 0) != BZ_OK)
        throw std::runtime_error("bzip2");
      out.resize(n);
      break;
    }
    case Compression::Xz:
    case Compression::Lzma: {
      lzma_stream s = LZMA_STREAM_INIT;
      lzma_options_lzma opt;
      lzma_lzma_preset(&opt, 6);
      lzma_ret rc = c == Compression::Xz ? lzma_easy_encoder(&s, 6, LZMA_CHECK_CRC32) : lzma_alone_encoder(&s, &opt);
      if (rc != LZMA_OK) throw std::runtime_error("lzma");
      out.resize(in.size() + in.size() / 2 + 4096);
      s.next_in = in.data();
      s.avail_in = in.size();
      s.next_out = out.data();
      s.avail_out = out.size();
      if (lzma_code(&s, LZMA_FINISH) != LZMA_STREAM_END) throw std::runtime_error("lzma_code");
      out.resize(s.total_out);
      lzma_end(&s);
      break;
    }
    case Compression::Lz4: {
      bz_put32(out, 0x184C2102);
      constexpr size_t kBlock = 8 << 20;
      for (size_t at = 0; at < in.size(); at += kBlock) {
        int n = int(std::min(kBlock, in.size() - at));
        std::vector<char> buf(size_t(LZ4_compressBound(n)));
        int got = LZ4_compress_default(reinterpret_cast<const char*>(in.data() + at), buf.data(), n, int(buf.size()));
        if (got <= 0) throw std::runtime_error("lz4");
        bz_put32(out, uint32_t(got));
        out.insert(out.end(), buf.begin(), buf.begin() + got);
      }
      break;
    }
    case Compression::Zstd: {
      out.resize(ZSTD_compressBound(in.size()));
      size_t n = ZSTD_compress(out.data(), out.size(), in.data(), in.size(), 19);
      if (ZSTD_isError(n)) throw std::runtime_error("zstd");
      out.resize(n);
      break;
    }
  }
  bz_put32(out, uint32_t(in.size()));  // scripts/Makefile.lib's size_append
  return out;
}

template <typename T>
void bz_set(BzBytes& b, size_t off, T v) {
  if (b.size() < off + sizeof v) b.resize(off + sizeof v);
  std::memcpy(b.data() + off, &v, sizeof v);
}

template <typename T>
T bz_get(const BzBytes& b, size_t off) {
  T v;
  std::memcpy(&v, b.data() + off, sizeof v);
  return v;
}

constexpr uint8_t kTestSetupSects = 3;
constexpr uint64_t kTestKernelOffset = (kTestSetupSects + 1) * 512;
constexpr uint32_t kTestPayloadOffset = 0x300;  // inside the protected-mode kernel, after "code"
constexpr uint64_t kTestPrefAddress = 0x1000000;
constexpr uint32_t kTestInitSize = 0x400000;

// A 2.15 x86-64 bzImage whose protected-mode kernel holds `payload` at kTestPayloadOffset.
inline BzBytes build_bzimage(const BzBytes& payload) {
  BzBytes img(kTestKernelOffset, 0);
  img[0x1fe] = 0x55;
  img[0x1ff] = 0xaa;
  img[0x200] = 0xeb;  // jmp short: its displacement gives the header's end, 0x202 + 0x6a = 0x26c
  img[0x201] = 0x6a;
  bz_set<uint8_t>(img, BZ_HDR_OFF(setup_sects), kTestSetupSects);
  bz_set<uint32_t>(img, BZ_HDR_OFF(header), 0x53726448);
  bz_set<uint16_t>(img, BZ_HDR_OFF(version), 0x020f);
  bz_set<uint8_t>(img, BZ_HDR_OFF(loadflags), LOADED_HIGH);
  bz_set<uint32_t>(img, BZ_HDR_OFF(code32_start), 0x100000);
  bz_set<uint32_t>(img, BZ_HDR_OFF(initrd_addr_max), 0x7fffffff);
  bz_set<uint32_t>(img, BZ_HDR_OFF(kernel_alignment), 0x200000);
  bz_set<uint8_t>(img, BZ_HDR_OFF(relocatable_kernel), 1);
  bz_set<uint8_t>(img, BZ_HDR_OFF(min_alignment), 21);
  bz_set<uint16_t>(img, BZ_HDR_OFF(xloadflags), XLF_KERNEL_64 | XLF_CAN_BE_LOADED_ABOVE_4G);
  bz_set<uint32_t>(img, BZ_HDR_OFF(cmdline_size), 0x7ff);
  bz_set<uint32_t>(img, BZ_HDR_OFF(payload_offset), kTestPayloadOffset);
  bz_set<uint32_t>(img, BZ_HDR_OFF(payload_length), uint32_t(payload.size()));
  bz_set<uint64_t>(img, BZ_HDR_OFF(pref_address), kTestPrefAddress);
  bz_set<uint32_t>(img, BZ_HDR_OFF(init_size), kTestInitSize);
  // The protected-mode kernel: a recognisable "decompressor" and then the payload.
  for (uint32_t i = 0; i < kTestPayloadOffset; ++i) img.push_back(uint8_t(0xc0 + i));
  img.insert(img.end(), payload.begin(), payload.end());
  bz_set<uint32_t>(img, BZ_HDR_OFF(syssize), uint32_t((img.size() - kTestKernelOffset + 15) / 16));
  img.resize(kTestKernelOffset + size_t(bz_get<uint32_t>(img, BZ_HDR_OFF(syssize))) * 16, 0);
  return img;
}

}  // namespace evmm::boot::test_images
