#include "boot/aml.h"

#include <cstdlib>

namespace evmm::boot::aml {

namespace {

void append(Bytes& out, const Bytes& more) { out.insert(out.end(), more.begin(), more.end()); }

Bytes prefixed(Op op, uint64_t v, unsigned n) {
  Bytes out{uint8_t(op)};
  for (unsigned i = 0; i < n; ++i) out.push_back(uint8_t(v >> (8 * i)));
  return out;
}

bool lead_char(char c) { return (c >= 'A' && c <= 'Z') || c == '_'; }
bool name_char(char c) { return lead_char(c) || (c >= '0' && c <= '9'); }

}  // namespace

Bytes integer(uint64_t v) {
  if (v == 0) return {uint8_t(Op::Zero)};
  if (v == 1) return {uint8_t(Op::One)};
  if (v <= 0xff) return prefixed(Op::BytePrefix, v, 1);
  if (v <= 0xffff) return prefixed(Op::WordPrefix, v, 2);
  if (v <= 0xffffffff) return prefixed(Op::DWordPrefix, v, 4);
  return prefixed(Op::QWordPrefix, v, 8);
}

Bytes name_seg(std::string_view name) {
  if (name.empty() || name.size() > 4 || !lead_char(name[0])) std::abort();
  Bytes out;
  for (char c : name) {
    if (!name_char(c)) std::abort();
    out.push_back(uint8_t(c));
  }
  out.resize(4, '_');
  return out;
}

Bytes pkg_length(uint64_t body_len) {
  // One byte holds up to 63; otherwise bits 7-6 count the following bytes, bits 3-0 are the low
  // nibble and each following byte carries 8 more bits.
  if (body_len + 1 <= 0x3f) return {uint8_t(body_len + 1)};
  for (unsigned extra = 1; extra <= 3; ++extra) {
    uint64_t total = body_len + 1 + extra;
    if (total >= (1ull << (4 + 8 * extra))) continue;
    Bytes out{uint8_t((extra << 6) | (total & 0xf))};
    for (unsigned i = 0; i < extra; ++i) out.push_back(uint8_t(total >> (4 + 8 * i)));
    return out;
  }
  std::abort();  // 256 MiB of AML: evmm never builds that
}

Bytes name(std::string_view seg, const Bytes& object) {
  Bytes out{uint8_t(Op::Name)};
  append(out, name_seg(seg));
  append(out, object);
  return out;
}

Bytes package(const std::vector<Bytes>& elements) {
  if (elements.size() > 0xff) std::abort();
  Bytes body{uint8_t(elements.size())};
  for (const auto& e : elements) append(body, e);
  Bytes out{uint8_t(Op::Package)};
  append(out, pkg_length(body.size()));
  append(out, body);
  return out;
}

Bytes string(std::string_view s) {
  Bytes out{uint8_t(Op::StringPrefix)};
  for (char c : s) {
    if (c <= 0 || static_cast<unsigned char>(c) > 0x7f) std::abort();
    out.push_back(uint8_t(c));
  }
  out.push_back(0);
  return out;
}

Bytes buffer(const Bytes& bytes) {
  Bytes body = integer(bytes.size());
  append(body, bytes);
  Bytes out{uint8_t(Op::Buffer)};
  append(out, pkg_length(body.size()));
  append(out, body);
  return out;
}

Bytes scope(std::string_view root_seg, const Bytes& terms) {
  Bytes body{uint8_t(Op::RootChar)};
  append(body, name_seg(root_seg));
  append(body, terms);
  Bytes out{uint8_t(Op::Scope)};
  append(out, pkg_length(body.size()));
  append(out, body);
  return out;
}

Bytes device(std::string_view seg, const Bytes& terms) {
  Bytes body = name_seg(seg);
  append(body, terms);
  Bytes out{uint8_t(Op::ExtOpPrefix), kExtDevice};
  append(out, pkg_length(body.size()));
  append(out, body);
  return out;
}

namespace resource {

namespace {
void le32(Bytes& out, uint32_t v) {
  for (int i = 0; i < 4; ++i) out.push_back(uint8_t(v >> (8 * i)));
}
}  // namespace

Bytes memory32_fixed(uint32_t base, uint32_t len) {
  Bytes out{0x86, 9, 0, 1};  // large item 0x06, length 9, information: read-write
  le32(out, base);
  le32(out, len);
  return out;
}

Bytes interrupt(uint32_t gsi, bool edge, bool active_high) {
  // Large item 0x09, length 6; flags: consumer (bit 0), edge (bit 1), active low (bit 2), exclusive.
  uint8_t flags = uint8_t(1 | (edge ? 2 : 0) | (active_high ? 0 : 4));
  Bytes out{0x89, 6, 0, flags, 1};
  le32(out, gsi);
  return out;
}

Bytes end_tag() { return {0x79, 0}; }

}  // namespace resource

}  // namespace evmm::boot::aml
