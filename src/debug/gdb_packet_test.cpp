#include "debug/gdb_packet.h"

#include <gtest/gtest.h>

namespace evmm::gdb {
namespace {

std::vector<PacketEvent> decode(PacketDecoder& d, std::string_view bytes) {
  std::vector<PacketEvent> out;
  d.feed(std::span(reinterpret_cast<const uint8_t*>(bytes.data()), bytes.size()), out);
  return out;
}

TEST(GdbPacket, FramesWithTheChecksumOfTheSentBytes) {
  EXPECT_EQ(frame("OK"), "$OK#9a");
  EXPECT_EQ(frame(""), "$#00");
  // '}' escapes '#', '$', '}' and '*' as the byte XOR 0x20; the sum covers the escaped form.
  EXPECT_EQ(frame("a#b"), std::string("$a}\x03") + "b#43");
}

TEST(GdbPacket, DecodesWhatItFrames) {
  PacketDecoder d;
  std::string data = "X100,4:\x24\x23\x7d\x2a";
  auto ev = decode(d, frame(data));
  ASSERT_EQ(ev.size(), 1u);
  EXPECT_EQ(ev[0].kind, PacketEvent::Kind::Packet);
  EXPECT_EQ(ev[0].data, data);
}

TEST(GdbPacket, SeesAcksNacksAndInterruptsBetweenPackets) {
  PacketDecoder d;
  auto ev = decode(d, std::string("+-\x03x") + "$g#67");
  ASSERT_EQ(ev.size(), 4u);
  EXPECT_EQ(ev[0].kind, PacketEvent::Kind::Ack);
  EXPECT_EQ(ev[1].kind, PacketEvent::Kind::Nack);
  EXPECT_EQ(ev[2].kind, PacketEvent::Kind::Interrupt);
  EXPECT_EQ(ev[3].data, "g");
  EXPECT_EQ(d.stats().noise_bytes, 1u);
}

TEST(GdbPacket, ContinuesAPacketSplitAcrossReads) {
  PacketDecoder d;
  EXPECT_TRUE(decode(d, "$qSupp").empty());
  EXPECT_TRUE(decode(d, "orted#3").empty());
  auto ev = decode(d, "7");
  ASSERT_EQ(ev.size(), 1u);
  EXPECT_EQ(ev[0].data, "qSupported");
}

TEST(GdbPacket, RejectsAWrongOrMalformedChecksum) {
  PacketDecoder d;
  auto ev = decode(d, "$g#68$g#zz$g#6");
  ASSERT_EQ(ev.size(), 2u);
  EXPECT_EQ(ev[0].kind, PacketEvent::Kind::BadChecksum);
  EXPECT_EQ(ev[1].kind, PacketEvent::Kind::BadChecksum);
  EXPECT_EQ(d.stats().bad_checksums, 2u);
  // The third is incomplete; the next good packet still decodes.
  ev = decode(d, "7$?#3f");
  ASSERT_EQ(ev.size(), 2u);
  EXPECT_EQ(ev[0].data, "g");
  EXPECT_EQ(ev[1].data, "?");
}

TEST(GdbPacket, ReportsAnOverlongPacketWithoutKeepingIt) {
  PacketDecoder d;
  std::string big(kMaxPacket + 1, 'a');
  auto ev = decode(d, frame(big));
  ASSERT_EQ(ev.size(), 1u);
  EXPECT_EQ(ev[0].kind, PacketEvent::Kind::TooLong);
  EXPECT_EQ(d.stats().too_long, 1u);
  // Exactly kMaxPacket bytes is still a packet.
  ev = decode(d, frame(std::string(kMaxPacket, 'b')));
  ASSERT_EQ(ev.size(), 1u);
  EXPECT_EQ(ev[0].data.size(), kMaxPacket);
}

TEST(GdbPacket, RestartsOnADollarInsideAPacket) {
  PacketDecoder d;
  auto ev = decode(d, "$garbage$g#67");
  ASSERT_EQ(ev.size(), 1u);
  EXPECT_EQ(ev[0].data, "g");
  EXPECT_EQ(d.stats().restarts, 1u);
}

TEST(GdbPacket, HexHelpers) {
  const uint8_t b[] = {0x00, 0xab, 0x7f};
  EXPECT_EQ(to_hex(b), "00ab7f");
  EXPECT_EQ(from_hex("00AB7f"), std::vector<uint8_t>(std::begin(b), std::end(b)));
  EXPECT_FALSE(from_hex("abc"));
  EXPECT_FALSE(from_hex("zz"));
  EXPECT_EQ(parse_hex_number("ffffffff80001000"), 0xffffffff80001000u);
  EXPECT_FALSE(parse_hex_number("1ffffffff80001000"));  // 17 digits
  EXPECT_FALSE(parse_hex_number(""));
  EXPECT_FALSE(parse_hex_number("12g"));
}

}  // namespace
}  // namespace evmm::gdb
