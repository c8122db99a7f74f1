#include "vcpu/x86_decode.h"

#include <algorithm>

namespace evmm::x86 {
namespace {

// Legacy prefixes, SDM vol. 2 2.1.1.
enum class Prefix : uint8_t {
  Es = 0x26, Cs = 0x2E, Ss = 0x36, Ds = 0x3E, Fs = 0x64, Gs = 0x65,
  OperandSize = 0x66, AddressSize = 0x67, Lock = 0xF0, Repne = 0xF2, Rep = 0xF3,
};

bool is_legacy_prefix(uint8_t b) {
  switch (static_cast<Prefix>(b)) {
    case Prefix::Es: case Prefix::Cs: case Prefix::Ss: case Prefix::Ds: case Prefix::Fs:
    case Prefix::Gs: case Prefix::OperandSize: case Prefix::AddressSize: case Prefix::Lock:
    case Prefix::Repne: case Prefix::Rep:
      return true;
  }
  return false;
}

// REX, SDM vol. 2 2.2.1: 0100WRXB, only in 64-bit mode, and only when it is the last prefix.
constexpr uint8_t kRexW = 8, kRexR = 4, kRexB = 1;

class Cursor {
 public:
  explicit Cursor(std::span<const uint8_t> bytes) : bytes_(bytes) {}

  Result<uint8_t> next() {
    if (pos_ < bytes_.size()) return bytes_[pos_++];
    // Fifteen bytes that are not yet a whole instruction are an over-long one (#GP on hardware);
    // fewer means KVM did not hand over the rest.
    if (bytes_.size() >= kMaxInsnLength)
      return make_error(EINVAL, "instruction longer than 15 bytes {}", format_bytes(bytes_));
    return make_error(EINVAL, "truncated instruction {}", format_bytes(bytes_));
  }
  uint8_t pos() const { return static_cast<uint8_t>(pos_); }

 private:
  std::span<const uint8_t> bytes_;
  size_t pos_ = 0;
};

}  // namespace

Result<DecodedInsn> decode(std::span<const uint8_t> all, CodeSize mode) {
  auto bytes = all.first(std::min(all.size(), kMaxInsnLength));
  auto unsupported = [&](std::string_view why = {}) {
    return make_error(EOPNOTSUPP, "unsupported instruction {}{}", format_bytes(bytes), why);
  };
  Cursor c(bytes);

  bool opsize = false, lock = false, rep = false, repne = false, segment = false, addrsize = false;
  uint8_t rex = 0;
  uint8_t op;
  for (;;) {
    op = TRY(c.next());
    if (is_legacy_prefix(op)) {
      auto p = static_cast<Prefix>(op);
      opsize |= p == Prefix::OperandSize;
      lock |= p == Prefix::Lock;
      rep |= p == Prefix::Rep;
      repne |= p == Prefix::Repne;
      addrsize |= p == Prefix::AddressSize;
      segment |= p == Prefix::Es || p == Prefix::Cs || p == Prefix::Ss || p == Prefix::Ds || p == Prefix::Fs ||
                 p == Prefix::Gs;
      rex = 0;  // a REX followed by a legacy prefix is ignored
      continue;
    }
    if (mode == CodeSize::Bits64 && (op & 0xF0) == 0x40) {
      rex = op;
      continue;
    }
    break;
  }
  // None of the instructions completed here accepts LOCK: hardware raises #UD.
  if (lock) return unsupported(" (lock prefix)");

  DecodedInsn d{};
  switch (mode) {
    case CodeSize::Bits64: d.operand_bits = (rex & kRexW) ? 64 : opsize ? 16 : 32; break;
    case CodeSize::Bits32: d.operand_bits = opsize ? 16 : 32; break;
    case CodeSize::Bits16: d.operand_bits = opsize ? 32 : 16; break;
  }

  // Mandatory prefixes (F3 for popcnt/lzcnt/tzcnt/rdpid) select the instruction; the same
  // opcode with F2 or without F3 is a different one (bsf, bsr, rdseed, FRED's erets/eretu).
  bool only_f3 = rep && !repne;
  switch (op) {
    case 0xCC:
      d.kind = AssistKind::Int3;
      d.vector = 3;
      break;
    case 0xCD:
      d.kind = AssistKind::IntN;
      d.vector = TRY(c.next());
      break;
    case 0x9B:
      d.kind = AssistKind::Fwait;
      break;
    case 0xC5: {
      // Two-byte VEX (SDM vol. 2 2.3.5): only vldmxcsr/vstmxcsr [register], with vvvv = 1111b,
      // L = 0, pp = 00 and no legacy or REX prefix before it (those are #UD).
      uint8_t v = TRY(c.next());
      if (mode != CodeSize::Bits64 && (v >> 6) != 3) return unsupported();  // LDS outside 64-bit mode
      if ((v & 0x7f) != 0x78 || opsize || rep || repne || rex || segment || addrsize) return unsupported();
      if (TRY(c.next()) != 0xAE) return unsupported();
      uint8_t modrm = TRY(c.next());
      unsigned ext = (modrm >> 3) & 7;
      if ((modrm >> 6) == 3 || (ext != 2 && ext != 3)) return unsupported();
      if ((modrm >> 6) != 0 || (modrm & 7) == 4 || (modrm & 7) == 5)
        return unsupported(" (only a [register] operand is handled)");
      d.kind = ext == 2 ? AssistKind::Ldmxcsr : AssistKind::Stmxcsr;
      d.rm = modrm & 7;
      d.modrm = modrm;
      d.vex = true;
      break;
    }
    case 0xD8: case 0xD9: case 0xDA: case 0xDB: case 0xDC: case 0xDD: case 0xDE: case 0xDF: {
      // x87 register forms only (ModRM.mod = 3); x86_fpu.cpp checks its allow-list.
      uint8_t modrm = TRY(c.next());
      if ((modrm >> 6) != 3) return unsupported(" (memory operand)");
      d.kind = AssistKind::X87;
      d.opcode = op;
      d.modrm = modrm;
      break;
    }
    case 0x0F: {
      uint8_t op2 = TRY(c.next());
      switch (op2) {
        case 0x01: {
          if (opsize || rep || repne) return unsupported();
          uint8_t modrm = TRY(c.next());
          if (modrm == 0xCA) d.kind = AssistKind::Clac;
          else if (modrm == 0xCB) d.kind = AssistKind::Stac;
          else if (modrm == 0xD0) d.kind = AssistKind::Xgetbv;
          else if (modrm == 0xD1) d.kind = AssistKind::Xsetbv;
          else return unsupported();
          break;
        }
        case 0xB8: case 0xBC: case 0xBD: {
          if (!only_f3) return unsupported();
          uint8_t modrm = TRY(c.next());
          if ((modrm >> 6) != 3) return unsupported(" (memory operand)");
          d.kind = op2 == 0xB8 ? AssistKind::Popcnt : op2 == 0xBC ? AssistKind::Tzcnt : AssistKind::Lzcnt;
          d.reg = static_cast<uint8_t>(((modrm >> 3) & 7) | ((rex & kRexR) ? 8 : 0));
          d.rm = static_cast<uint8_t>((modrm & 7) | ((rex & kRexB) ? 8 : 0));
          break;
        }
        case 0xC7: {
          if (!only_f3 || opsize) return unsupported();
          uint8_t modrm = TRY(c.next());
          if (((modrm >> 3) & 7) != 7) return unsupported();
          if ((modrm >> 6) != 3) return unsupported(" (memory operand)");
          d.kind = AssistKind::Rdpid;
          d.rm = static_cast<uint8_t>((modrm & 7) | ((rex & kRexB) ? 8 : 0));
          break;
        }
        case 0xAE: {
          // 0F AE /0../6 without 66/F2/F3 (those select other instructions: clwb, rdfsbase, ...);
          // only [reg] operands through DS, no SIB, displacement, segment or address-size prefix.
          if (opsize || rep || repne) return unsupported();
          uint8_t modrm = TRY(c.next());
          unsigned ext = (modrm >> 3) & 7;
          if ((modrm >> 6) == 3 || ext == 7) return unsupported();
          if ((modrm >> 6) != 0 || (modrm & 7) == 4 || (modrm & 7) == 5 || segment || addrsize)
            return unsupported(" (only a [register] operand is handled)");
          static constexpr AssistKind kinds[] = {AssistKind::Fxsave, AssistKind::Fxrstor, AssistKind::Ldmxcsr,
                                                 AssistKind::Stmxcsr, AssistKind::Xsave,  AssistKind::Xrstor,
                                                 AssistKind::Xsaveopt};
          d.kind = kinds[ext];
          d.rm = static_cast<uint8_t>((modrm & 7) | ((rex & kRexB) ? 8 : 0));
          d.rex_w = rex & kRexW;
          d.modrm = modrm;
          break;
        }
        default:
          return unsupported();
      }
      break;
    }
    default:
      return unsupported();
  }
  d.length = c.pos();
  return d;
}

}  // namespace evmm::x86
