// Host-side decompression of a bzImage payload: every format round-trips through Debian's
// library for it, and bombs, truncation, corruption and unknown data are refused with one line.
#include "boot/decompress.h"

#include <gtest/gtest.h>

#include "testing/boot_test_images.h"
#include "testing/bzimage_builder.h"

namespace evmm::boot {
namespace {

using namespace test_images;

constexpr Compression kAll[] = {Compression::Gzip, Compression::Bzip2, Compression::Lzma,
                                Compression::Xz,   Compression::Lz4,   Compression::Zstd};

class DecompressFormat : public ::testing::TestWithParam<Compression> {};

TEST_P(DecompressFormat, RoundTripsAndIgnoresTheSizeTrailer) {
  Bytes plain = pattern(300000, 3);
  Bytes packed = compress(GetParam(), plain);
  EXPECT_EQ(detect_compression(packed), GetParam());
  auto out = decompress(packed, 1 << 20);
  ASSERT_TRUE(out) << out.error().message();
  EXPECT_EQ(*out, plain);
}

TEST_P(DecompressFormat, OutputExactlyAtTheCapIsAccepted) {
  Bytes plain = pattern(100000, 4);
  auto out = decompress(compress(GetParam(), plain), plain.size());
  ASSERT_TRUE(out) << out.error().message();
  EXPECT_EQ(out->size(), plain.size());
}

TEST_P(DecompressFormat, ABombPastTheCapIsRefused) {
  Bytes zeros(4 << 20, 0);  // compresses to a few KiB
  Bytes packed = compress(GetParam(), zeros);
  EXPECT_LT(packed.size(), 300000u);
  EXPECT_TRUE(fails_with(decompress(packed, 1 << 20), E2BIG, "more than 1048576 bytes"));
}

TEST_P(DecompressFormat, ATruncatedStreamIsRefused) {
  Bytes packed = compress(GetParam(), pattern(200000, 5));
  packed.resize(packed.size() / 2);
  auto out = decompress(packed, 1 << 20);
  ASSERT_FALSE(out);
  EXPECT_EQ(out.error().code(), EINVAL) << out.error().message();
  EXPECT_NE(out.error().context().find(to_string(GetParam())), std::string::npos) << out.error().message();
}

TEST_P(DecompressFormat, CorruptDataIsRefused) {
  Bytes packed = compress(GetParam(), pattern(200000, 6));
  for (size_t i = 16; i < packed.size() - 8; i += 7) packed[i] ^= 0x5a;
  auto out = decompress(packed, 1 << 20);
  // Corruption may still decode to something for formats without a checksum, but never past the
  // cap and never to the original.
  if (out) {
    EXPECT_NE(*out, pattern(200000, 6));
  } else {
    EXPECT_TRUE(out.error().code() == EINVAL || out.error().code() == E2BIG) << out.error().message();
  }
}

INSTANTIATE_TEST_SUITE_P(All, DecompressFormat, ::testing::ValuesIn(kAll),
                         [](const auto& info) { return std::string(to_string(info.param)); });

TEST(Decompress, UnknownDataIsRefused) {
  EXPECT_TRUE(fails_with(decompress(pattern(100, 1), 1 << 20), ENOEXEC, "no format evmm can decompress"));
  EXPECT_TRUE(fails_with(decompress({}, 1 << 20), ENOEXEC, "no format"));
  EXPECT_EQ(detect_compression(Bytes{0x1f}), std::nullopt);
}

TEST(Decompress, MagicsAreThoseOfBootRst) {
  EXPECT_EQ(detect_compression(Bytes{0x1f, 0x8b, 8}), Compression::Gzip);
  EXPECT_EQ(detect_compression(Bytes{'B', 'Z', 'h', '9'}), Compression::Bzip2);
  EXPECT_EQ(detect_compression(Bytes{0x5d, 0, 0, 0x80}), Compression::Lzma);
  EXPECT_EQ(detect_compression(Bytes{0xfd, '7', 'z', 'X', 'Z', 0}), Compression::Xz);
  EXPECT_EQ(detect_compression(Bytes{0x02, 0x21, 0x4c, 0x18}), Compression::Lz4);
  EXPECT_EQ(detect_compression(Bytes{0x28, 0xb5, 0x2f, 0xfd}), Compression::Zstd);
}

TEST(Decompress, Lz4ConcatenatedFramesAndABlockPastTheEnd) {
  Bytes a = pattern(5000, 1), b = pattern(7000, 2);
  Bytes pa = compress(Compression::Lz4, a), pb = compress(Compression::Lz4, b);
  pa.erase(pa.end() - 4, pa.end());  // drop the trailer: the second frame's magic follows (erase: see linux_header_test)
  Bytes both = pa;
  both.insert(both.end(), pb.begin(), pb.end());
  auto out = decompress(both, 1 << 20);
  ASSERT_TRUE(out) << out.error().message();
  Bytes want = a;
  want.insert(want.end(), b.begin(), b.end());
  EXPECT_EQ(*out, want);
  Bytes bad = {0x02, 0x21, 0x4c, 0x18, 0xff, 0xff, 0, 0, 1, 2, 3, 4, 5};
  EXPECT_TRUE(fails_with(decompress(bad, 1 << 20), EINVAL, "runs past the end"));
}

}  // namespace
}  // namespace evmm::boot
