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

}  // namespace evmm::boot::aml
