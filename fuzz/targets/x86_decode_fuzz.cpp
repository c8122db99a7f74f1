// The instruction decoder of the emulation assists (vcpu/x86_decode.h), on the bytes a guest left at
// cs:rip. Input: one byte choosing the code size (value % 3: 16, 32, 64 bits), then the bytes.
// Invariants from x86_decode.h: at most 15 bytes are looked at; a decoded instruction is 1 to 15
// bytes long and lies inside the bytes given, with a known kind, operand and address size,
// registers and a well-formed memory operand where the instruction has one; failures are EINVAL
// (truncated or over-long, or a LOCK the instruction refuses) or EOPNOTSUPP (not an assisted instruction).
// An instruction replayed on the host (kinds sse, avx, avx512, bmi; 64-bit mode only) carries its
// host encoding, which decodes again to the same instruction, its memory operand RIP-relative.
#include <cerrno>
#include <cstring>

#include "fuzz_input.h"
#include "vcpu/x86_decode.h"

using namespace evmm;

extern "C" int LLVMFuzzerInitialize(int*, char***) {
  fuzz_quiet_logs();
  return 0;
}

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  fuzz::Input in(data, size);
  static constexpr x86::CodeSize kModes[] = {x86::CodeSize::Bits16, x86::CodeSize::Bits32, x86::CodeSize::Bits64};
  x86::CodeSize mode = kModes[in.u8() % 3];
  auto bytes = in.rest();

  auto d = x86::decode(bytes, mode);
  if (!d) {
    FUZZ_CHECK(d.error().code() == EINVAL || d.error().code() == EOPNOTSUPP);
    FUZZ_CHECK(!d.error().message().empty());
  } else {
    FUZZ_CHECK(d->kind < AssistKind::Count);
    FUZZ_CHECK(d->length >= 1 && d->length <= x86::kMaxInsnLength && d->length <= bytes.size());
    FUZZ_CHECK(d->operand_bits == 16 || d->operand_bits == 32 || d->operand_bits == 64);
    FUZZ_CHECK(d->reg < 16 && d->rm < 16);
    FUZZ_CHECK(d->address_bits == 16 || d->address_bits == 32 || d->address_bits == 64);
    if (d->kind == AssistKind::Int3) FUZZ_CHECK(d->vector == 3);
    if (d->kind == AssistKind::Int1) FUZZ_CHECK(d->vector == 1);
    if (d->mem) {
      // From a byte (the cache-line flushes) to an XSAVE area (Zydis counts the operand in bits, 16 of them).
      FUZZ_CHECK(d->mem->size >= 1 && d->mem->size <= 8192);
      FUZZ_CHECK(d->mem->scale == 1 || d->mem->scale == 2 || d->mem->scale == 4 || d->mem->scale == 8);
      FUZZ_CHECK(d->mem->base == x86::kNoReg || d->mem->base < 16);
      FUZZ_CHECK(d->mem->index == x86::kNoReg || d->mem->index < 16);
      FUZZ_CHECK(static_cast<unsigned>(d->mem->segment) <= static_cast<unsigned>(x86::SegReg::GS));
      if (mode != x86::CodeSize::Bits64) FUZZ_CHECK(!d->mem->rip_relative && d->address_bits != 64);
    }
    // The instructions that take memory operands have one; the others do not.
    bool needs_mem = d->kind == AssistKind::Cmpxchg8b || d->kind == AssistKind::Cmpxchg16b ||
                     d->kind == AssistKind::Clflush || d->kind == AssistKind::Clflushopt ||
                     d->kind == AssistKind::Clwb || d->kind == AssistKind::Invpcid;
    if (needs_mem) FUZZ_CHECK(d->mem.has_value());
    if (mode != x86::CodeSize::Bits64) FUZZ_CHECK(d->operand_bits != 64 && d->reg < 8 && d->rm < 8);
    bool replayed = d->kind == AssistKind::Sse || d->kind == AssistKind::Avx || d->kind == AssistKind::Avx512 ||
                    d->kind == AssistKind::Bmi;
    FUZZ_CHECK(replayed == d->replay.has_value());
    if (d->replay) {
      const auto& r = *d->replay;
      FUZZ_CHECK(mode == x86::CodeSize::Bits64);
      FUZZ_CHECK(r.length >= 1 && r.length <= x86::kMaxInsnLength);
      FUZZ_CHECK(d->mem.has_value() == (r.disp_offset != 0));
      if (d->mem) FUZZ_CHECK(r.disp_offset + 4u <= r.length && d->mem->size <= 64 && d->mem->size % r.align == 0);
      auto again = x86::decode(std::span<const uint8_t>(r.bytes.data(), r.length), x86::CodeSize::Bits64);
      FUZZ_CHECK(again && again->kind == d->kind && again->length == r.length && again->replay &&
                 std::strcmp(again->replay->mnemonic, r.mnemonic) == 0);
      FUZZ_CHECK(again->mem.has_value() == d->mem.has_value());
      if (d->mem) FUZZ_CHECK(again->mem->rip_relative && again->mem->size == d->mem->size &&
                             again->mem->segment == x86::SegReg::DS);
    }
  }
  // Bytes past the 15th cannot change the answer.
  if (bytes.size() > x86::kMaxInsnLength) {
    auto first = x86::decode(bytes.first(x86::kMaxInsnLength), mode);
    FUZZ_CHECK(first.has_value() == d.has_value());
    if (d) FUZZ_CHECK(first->kind == d->kind && first->length == d->length);
    else FUZZ_CHECK(first.error().code() == d.error().code());
  }
  return 0;
}
