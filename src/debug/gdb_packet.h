// GDB remote serial protocol framing (gdb manual, "Overview" and "Packet Acknowledgment"): pure,
// no I/O, so that it can be fuzzed and tested alone.
//
// Rules:
//   - A packet is $<data>#<two hex digits>, the checksum being the sum of the data bytes as sent,
//     modulo 256. '}' escapes the next byte, which is sent XORed with 0x20; the decoder undoes
//     escapes in every packet (gdb only escapes in binary data, where '}', '#', '$' and '*' occur).
//     Run-length encoding ('*') is only ever sent by stubs, so '*' in input is an ordinary byte.
//   - Outside a packet, '+' and '-' are the peer's ack and nack, 0x03 is an interrupt request (the
//     user pressed Ctrl-C), and anything else is noise, counted and dropped.
//   - The decoder's buffer is bounded by kMaxPacket: a longer packet is read to its end and
//     reported as TooLong, never stored. A packet with a wrong checksum is BadChecksum; the stub
//     answers '-' and gdb sends it again.
#pragma once

#include <cstddef>
#include <cstdint>
#include <optional>
#include <span>
#include <string>
#include <string_view>
#include <vector>

namespace evmm::gdb {

// The largest packet data the decoder keeps, and so the PacketSize evmm announces in qSupported.
inline constexpr size_t kMaxPacket = 16384;

struct PacketEvent {
  enum class Kind { Packet, Ack, Nack, Interrupt, BadChecksum, TooLong };
  Kind kind;
  std::string data;  // Packet: the data with escapes undone
};

struct DecoderStats {
  uint64_t packets = 0, bad_checksums = 0, too_long = 0, noise_bytes = 0, restarts = 0;
};

class PacketDecoder {
 public:
  // Decodes in, appending what it completes to out; a packet split across calls continues.
  void feed(std::span<const uint8_t> in, std::vector<PacketEvent>& out);
  const DecoderStats& stats() const { return stats_; }

 private:
  enum class State { Idle, Data, Escape, Sum1, Sum2 };
  void start();
  State state_ = State::Idle;
  std::string data_;
  uint8_t sum_ = 0;       // of the bytes as sent
  uint8_t received_ = 0;  // the checksum's first digit
  bool overflow_ = false;
  DecoderStats stats_;
};

// $data#xx with the bytes that must be escaped ('$', '#', '}', '*') escaped.
std::string frame(std::string_view data);

// Hex helpers for the command layer: lower-case pairs; parsing rejects odd lengths and non-hex.
std::string to_hex(std::span<const uint8_t> bytes);
std::optional<std::vector<uint8_t>> from_hex(std::string_view hex);
// A big-endian hex number as gdb writes addresses and lengths: 1 to 16 digits.
std::optional<uint64_t> parse_hex_number(std::string_view hex);

}  // namespace evmm::gdb
