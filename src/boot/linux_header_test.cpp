// The bzImage setup header parser: a valid 2.15 header, and each refusal with its own message.
#include "boot/linux_header.h"

#include <gtest/gtest.h>

#include "testing/boot_test_images.h"
#include "testing/bzimage_builder.h"

namespace evmm::boot {
namespace {

using namespace test_images;

Bytes valid() { return build_bzimage(compress(Compression::Gzip, pattern(1000, 1))); }

TEST(BzImageHeader, ParsesAValidHeader) {
  Bytes img = valid();
  ASSERT_TRUE(is_bzimage(img));
  auto bz = parse_bzimage(img);
  ASSERT_TRUE(bz) << bz.error().message();
  EXPECT_EQ(bz->version(), 0x020f);
  EXPECT_EQ(bz->header_bytes.size(), 0x26cu - 0x1f1u);
  EXPECT_EQ(bz->header_bytes.data(), img.data() + 0x1f1);
  EXPECT_EQ(bz->kernel.data(), img.data() + kTestKernelOffset);
  EXPECT_EQ(bz->kernel.size(), img.size() - kTestKernelOffset);
  EXPECT_EQ(bz->payload.data(), img.data() + kTestKernelOffset + kTestPayloadOffset);
  EXPECT_EQ(detect_compression(bz->payload), Compression::Gzip);
  EXPECT_EQ(bz->hdr.init_size, kTestInitSize);
  EXPECT_EQ(bz->hdr.pref_address, kTestPrefAddress);
  EXPECT_TRUE(bz->relocatable());
}

TEST(BzImageHeader, FieldsPastTheHeadersEndReadZero) {
  Bytes img = valid();
  img[0x201] = 0x62;  // ends at 0x264, right after init_size: handover_offset is not in it
  bz_set<uint32_t>(img, BZ_HDR_OFF(handover_offset), 0x1234);
  auto bz = parse_bzimage(img);
  ASSERT_TRUE(bz) << bz.error().message();
  EXPECT_EQ(bz->hdr.handover_offset, 0u);
  EXPECT_EQ(bz->hdr.init_size, kTestInitSize);
}

struct Refusal {
  const char* name;
  void (*spoil)(Bytes&);
  const char* says;
};

const Refusal kRefusals[] = {
    {"NoSignature", [](Bytes& b) { b[0x202] = 'X'; }, "no \"HdrS\""},
    {"HeaderPastItsRoom", [](Bytes& b) { b[0x201] = 0xff; }, "past its room in boot_params"},
    {"OldProtocol", [](Bytes& b) { bz_set<uint16_t>(b, BZ_HDR_OFF(version), 0x0209); }, "boot protocol 2.09 is older than 2.10"},
    {"HeaderTooShortForItsVersion", [](Bytes& b) { b[0x201] = 0x40; }, "before the fields of protocol 2.15"},
    {"ZImage", [](Bytes& b) { bz_set<uint8_t>(b, BZ_HDR_OFF(loadflags), 0); }, "LOADED_HIGH is clear"},
    {"SetupSectsZero", [](Bytes& b) { bz_set<uint8_t>(b, BZ_HDR_OFF(setup_sects), 0); }, "setup_sects is 0 (read as 4"},
    {"SetupPastTheFile", [](Bytes& b) { bz_set<uint8_t>(b, BZ_HDR_OFF(setup_sects), 200); }, "past the end of the"},
    // pop_back, not resize(size - 64): the ASan build's GCC warns that a resize could grow by ~2^64.
    {"Truncated", [](Bytes& b) { for (int i = 0; i < 64; ++i) b.pop_back(); }, "the file is truncated: syssize"},
    {"PayloadOutside", [](Bytes& b) { bz_set<uint32_t>(b, BZ_HDR_OFF(payload_length), 0x100000); }, "the payload"},
    {"BadAlignment", [](Bytes& b) { bz_set<uint32_t>(b, BZ_HDR_OFF(kernel_alignment), 0x300000); }, "not a power of two"},
};

class BzImageRefusal : public ::testing::TestWithParam<Refusal> {};

TEST_P(BzImageRefusal, IsRefusedWithItsOwnMessage) {
  Bytes img = valid();
  GetParam().spoil(img);
  EXPECT_TRUE(fails_with(parse_bzimage(img), EINVAL, GetParam().says));
}

INSTANTIATE_TEST_SUITE_P(All, BzImageRefusal, ::testing::ValuesIn(kRefusals),
                         [](const auto& info) { return std::string(info.param.name); });

TEST(BzImageHeader, ShortFilesAreNotBzImages) {
  EXPECT_FALSE(is_bzimage(Bytes(0x205, 0)));
  Bytes img = valid();
  img.resize(0x220);
  EXPECT_TRUE(is_bzimage(img));
  EXPECT_TRUE(fails_with(parse_bzimage(img), EINVAL, "past the end of the 544-byte file"));
}

}  // namespace
}  // namespace evmm::boot
