#include "debug/gdb_packet.h"

namespace evmm::gdb {
namespace {

int hex_digit(uint8_t c) {
  if (c >= '0' && c <= '9') return c - '0';
  if (c >= 'a' && c <= 'f') return c - 'a' + 10;
  if (c >= 'A' && c <= 'F') return c - 'A' + 10;
  return -1;
}

constexpr char kDigits[] = "0123456789abcdef";

}  // namespace

void PacketDecoder::start() {
  state_ = State::Data;
  data_.clear();
  sum_ = 0;
  overflow_ = false;
}

void PacketDecoder::feed(std::span<const uint8_t> in, std::vector<PacketEvent>& out) {
  for (uint8_t c : in) {
    switch (state_) {
      case State::Idle:
        if (c == '$') start();
        else if (c == '+') out.push_back({PacketEvent::Kind::Ack, {}});
        else if (c == '-') out.push_back({PacketEvent::Kind::Nack, {}});
        else if (c == 0x03) out.push_back({PacketEvent::Kind::Interrupt, {}});
        else ++stats_.noise_bytes;
        break;
      case State::Data:
      case State::Escape:
        if (c == '$') {
          // A new packet inside one: the peer gave up on the first (it never sends '$' unescaped).
          ++stats_.restarts;
          start();
          break;
        }
        if (c == '#' && state_ == State::Data) {
          state_ = State::Sum1;
          break;
        }
        sum_ = static_cast<uint8_t>(sum_ + c);
        if (state_ == State::Data && c == '}') {
          state_ = State::Escape;
          break;
        }
        if (data_.size() >= kMaxPacket) overflow_ = true;
        else data_.push_back(static_cast<char>(state_ == State::Escape ? c ^ 0x20 : c));
        state_ = State::Data;
        break;
      case State::Sum1: {
        int hi = hex_digit(c);
        if (hi < 0) {
          ++stats_.bad_checksums;
          out.push_back({PacketEvent::Kind::BadChecksum, {}});
          state_ = State::Idle;
          break;
        }
        received_ = static_cast<uint8_t>(hi);
        state_ = State::Sum2;
        break;
      }
      case State::Sum2: {
        state_ = State::Idle;
        int lo = hex_digit(c);
        if (lo < 0 || static_cast<uint8_t>(received_ << 4 | lo) != sum_) {
          ++stats_.bad_checksums;
          out.push_back({PacketEvent::Kind::BadChecksum, {}});
        } else if (overflow_) {
          ++stats_.too_long;
          out.push_back({PacketEvent::Kind::TooLong, {}});
        } else {
          ++stats_.packets;
          out.push_back({PacketEvent::Kind::Packet, std::move(data_)});
        }
        data_.clear();
        break;
      }
    }
  }
}

std::string frame(std::string_view data) {
  std::string out = "$";
  uint8_t sum = 0;
  auto put = [&](char c) {
    out.push_back(c);
    sum = static_cast<uint8_t>(sum + static_cast<uint8_t>(c));
  };
  for (char c : data) {
    if (c == '$' || c == '#' || c == '}' || c == '*') {
      put('}');
      put(static_cast<char>(c ^ 0x20));
    } else {
      put(c);
    }
  }
  out.push_back('#');
  out.push_back(kDigits[sum >> 4]);
  out.push_back(kDigits[sum & 15]);
  return out;
}

std::string to_hex(std::span<const uint8_t> bytes) {
  std::string out;
  out.reserve(bytes.size() * 2);
  for (uint8_t b : bytes) {
    out.push_back(kDigits[b >> 4]);
    out.push_back(kDigits[b & 15]);
  }
  return out;
}

std::optional<std::vector<uint8_t>> from_hex(std::string_view hex) {
  if (hex.size() % 2) return std::nullopt;
  std::vector<uint8_t> out(hex.size() / 2);
  for (size_t i = 0; i < out.size(); ++i) {
    int hi = hex_digit(static_cast<uint8_t>(hex[2 * i])), lo = hex_digit(static_cast<uint8_t>(hex[2 * i + 1]));
    if (hi < 0 || lo < 0) return std::nullopt;
    out[i] = static_cast<uint8_t>(hi << 4 | lo);
  }
  return out;
}

std::optional<uint64_t> parse_hex_number(std::string_view hex) {
  if (hex.empty() || hex.size() > 16) return std::nullopt;
  uint64_t v = 0;
  for (char c : hex) {
    int d = hex_digit(static_cast<uint8_t>(c));
    if (d < 0) return std::nullopt;
    v = v << 4 | static_cast<uint64_t>(d);
  }
  return v;
}

}  // namespace evmm::gdb
