// The input of a device target: a sequence of operations against one device on an IoBus, as vCPUs
// and the platform would issue them. Each operation starts with one byte, op:
//   op & 3 == 0  read:  width 1 << ((op >> 2) & 3) bytes at offset op >> 4 from the device's base
//   op & 3 == 1  write: the same, followed by the value, width bytes little-endian
//   op & 3 == 2  clock: advance the fake clock by (next 2 bytes, LE) << ((op >> 2) & 31) ns
//   op & 3 == 3  extra: a device-specific action with argument op >> 2 (see each target)
// Offsets run to 15, past every device's range, so the bus's own refusal is exercised too.
// fuzz/make_corpus.py writes inputs in this format.
#pragma once

#include <array>
#include <cstdint>
#include <span>

#include "fuzz_input.h"

namespace evmm::fuzz {

struct Op {
  enum Kind : uint8_t { Read, Write, Clock, Extra } kind;
  unsigned width = 0;     // read and write
  uint64_t offset = 0;    // read and write
  uint64_t value = 0;     // write: the value; clock: nanoseconds
  uint8_t arg = 0;        // extra
  std::array<uint8_t, 8> data{};  // the access's bytes: the write value, or what a read returned

  std::span<uint8_t> bytes() { return std::span(data).first(width); }
};

// Decodes the next operation; false at the end of the input.
inline bool next_op(Input& in, Op* op) {
  if (in.done()) return false;
  uint8_t b = in.u8();
  *op = Op{};
  op->kind = static_cast<Op::Kind>(b & 3);
  switch (op->kind) {
    case Op::Read:
    case Op::Write:
      op->width = 1u << ((b >> 2) & 3);
      op->offset = b >> 4;
      if (op->kind == Op::Write) {
        op->value = in.le(op->width);
        for (unsigned i = 0; i < op->width; ++i) op->data[i] = static_cast<uint8_t>(op->value >> (8 * i));
      }
      break;
    case Op::Clock:
      // At most 2^47 ns (about 39 hours) a step: the fake clock stays far from overflowing, as a
      // real one does.
      op->value = in.le(2) << ((b >> 2) & 31);
      break;
    case Op::Extra:
      op->arg = b >> 2;
      break;
  }
  return true;
}

inline bool all_ones(std::span<const uint8_t> b) {
  for (uint8_t x : b)
    if (x != 0xff) return false;
  return true;
}

}  // namespace evmm::fuzz
