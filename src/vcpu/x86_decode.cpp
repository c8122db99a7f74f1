#include "vcpu/x86_decode.h"

#include <Zydis/Zydis.h>

#include <algorithm>

#include "vcpu/x86_decode_zydis.h"

namespace evmm::x86 {
namespace {

struct ModeInfo {
  ZydisMachineMode machine;
  ZydisStackWidth stack;
};

ModeInfo zydis_mode(DecodeMode m) {
  switch (m) {
    case DecodeMode::Long64: return {ZYDIS_MACHINE_MODE_LONG_64, ZYDIS_STACK_WIDTH_64};
    case DecodeMode::Compat32: return {ZYDIS_MACHINE_MODE_LONG_COMPAT_32, ZYDIS_STACK_WIDTH_32};
    case DecodeMode::Compat16: return {ZYDIS_MACHINE_MODE_LONG_COMPAT_16, ZYDIS_STACK_WIDTH_16};
    case DecodeMode::Legacy32: return {ZYDIS_MACHINE_MODE_LEGACY_32, ZYDIS_STACK_WIDTH_32};
    case DecodeMode::Legacy16: return {ZYDIS_MACHINE_MODE_LEGACY_16, ZYDIS_STACK_WIDTH_16};
    case DecodeMode::Real16: return {ZYDIS_MACHINE_MODE_REAL_16, ZYDIS_STACK_WIDTH_16};
  }
  return {ZYDIS_MACHINE_MODE_LONG_64, ZYDIS_STACK_WIDTH_64};
}

// The instructions the assists complete. Zydis has already applied the mandatory prefixes
// (F3 0F B8 is popcnt, 0F B8 alone is jmpe; 66 0F AE /7 is clflushopt, 0F AE /7 clflush).
std::optional<AssistKind> assist_kind(ZydisMnemonic m) {
  switch (m) {
    case ZYDIS_MNEMONIC_INT3: return AssistKind::Int3;
    case ZYDIS_MNEMONIC_INT: return AssistKind::IntN;
    case ZYDIS_MNEMONIC_INT1: return AssistKind::Int1;
    case ZYDIS_MNEMONIC_CLAC: return AssistKind::Clac;
    case ZYDIS_MNEMONIC_STAC: return AssistKind::Stac;
    case ZYDIS_MNEMONIC_FWAIT: return AssistKind::Fwait;
    case ZYDIS_MNEMONIC_RDPID: return AssistKind::Rdpid;
    case ZYDIS_MNEMONIC_POPCNT: return AssistKind::Popcnt;
    case ZYDIS_MNEMONIC_LZCNT: return AssistKind::Lzcnt;
    case ZYDIS_MNEMONIC_TZCNT: return AssistKind::Tzcnt;
    case ZYDIS_MNEMONIC_CMPXCHG8B: return AssistKind::Cmpxchg8b;
    case ZYDIS_MNEMONIC_CMPXCHG16B: return AssistKind::Cmpxchg16b;
    case ZYDIS_MNEMONIC_CLFLUSH: return AssistKind::Clflush;
    case ZYDIS_MNEMONIC_CLFLUSHOPT: return AssistKind::Clflushopt;
    case ZYDIS_MNEMONIC_CLWB: return AssistKind::Clwb;
    case ZYDIS_MNEMONIC_INVPCID: return AssistKind::Invpcid;
    case ZYDIS_MNEMONIC_LSL: return AssistKind::Lsl;
    case ZYDIS_MNEMONIC_LAR: return AssistKind::Lar;
    case ZYDIS_MNEMONIC_LDMXCSR:
    case ZYDIS_MNEMONIC_VLDMXCSR: return AssistKind::Ldmxcsr;
    case ZYDIS_MNEMONIC_STMXCSR:
    case ZYDIS_MNEMONIC_VSTMXCSR: return AssistKind::Stmxcsr;
    case ZYDIS_MNEMONIC_FXSAVE:
    case ZYDIS_MNEMONIC_FXSAVE64: return AssistKind::Fxsave;
    case ZYDIS_MNEMONIC_FXRSTOR:
    case ZYDIS_MNEMONIC_FXRSTOR64: return AssistKind::Fxrstor;
    case ZYDIS_MNEMONIC_XSAVE:
    case ZYDIS_MNEMONIC_XSAVE64: return AssistKind::Xsave;
    case ZYDIS_MNEMONIC_XSAVEOPT:
    case ZYDIS_MNEMONIC_XSAVEOPT64: return AssistKind::Xsaveopt;
    case ZYDIS_MNEMONIC_XRSTOR:
    case ZYDIS_MNEMONIC_XRSTOR64: return AssistKind::Xrstor;
    case ZYDIS_MNEMONIC_XGETBV: return AssistKind::Xgetbv;
    case ZYDIS_MNEMONIC_XSETBV: return AssistKind::Xsetbv;
    case ZYDIS_MNEMONIC_IRET:
    case ZYDIS_MNEMONIC_IRETD:
    case ZYDIS_MNEMONIC_IRETQ: return AssistKind::Iret;
    default: return std::nullopt;
  }
}

std::optional<SegReg> segment(ZydisRegister r) {
  switch (r) {
    case ZYDIS_REGISTER_ES: return SegReg::ES;
    case ZYDIS_REGISTER_CS: return SegReg::CS;
    case ZYDIS_REGISTER_SS: return SegReg::SS;
    case ZYDIS_REGISTER_DS: return SegReg::DS;
    case ZYDIS_REGISTER_FS: return SegReg::FS;
    case ZYDIS_REGISTER_GS: return SegReg::GS;
    default: return std::nullopt;
  }
}

}  // namespace

namespace zydis {

std::optional<uint8_t> gpr_number(ZydisRegister r) {
  switch (ZydisRegisterGetClass(r)) {
    case ZYDIS_REGCLASS_GPR16:
    case ZYDIS_REGCLASS_GPR32:
    case ZYDIS_REGCLASS_GPR64: return static_cast<uint8_t>(ZydisRegisterGetId(r));
    default: return std::nullopt;
  }
}

AssistResult<MemRef> memory_operand(const ZydisDecodedOperand& op, std::span<const uint8_t> bytes) {
  auto hex = [&] { return format_bytes(bytes); };
  if (op.mem.type != ZYDIS_MEMOP_TYPE_MEM)
    return make_error(EOPNOTSUPP, "unsupported instruction {} (memory operand)", hex());
  MemRef m{};
  auto seg = segment(op.mem.segment);
  if (!seg) return make_error(EOPNOTSUPP, "unsupported instruction {} (segment)", hex());
  m.segment = *seg;
  m.base = m.index = kNoReg;
  if (op.mem.base == ZYDIS_REGISTER_RIP || op.mem.base == ZYDIS_REGISTER_EIP) {
    m.rip_relative = true;
  } else if (op.mem.base != ZYDIS_REGISTER_NONE) {
    auto b = gpr_number(op.mem.base);
    if (!b) return make_error(EOPNOTSUPP, "unsupported instruction {} (base register)", hex());
    m.base = *b;
  }
  if (op.mem.index != ZYDIS_REGISTER_NONE) {
    auto x = gpr_number(op.mem.index);
    if (!x) return make_error(EOPNOTSUPP, "unsupported instruction {} (index register)", hex());
    m.index = *x;
  }
  m.scale = op.mem.scale ? op.mem.scale : 1;
  m.disp = op.mem.disp.has_displacement ? op.mem.disp.value : 0;
  m.size = static_cast<uint16_t>(std::max<unsigned>(op.size / 8, 1));
  return m;
}

}  // namespace zydis

Result<DecodeMode> decode_mode(const kvm_sregs& sregs) {
  CodeSize size = TRY(code_size(sregs));
  if (sregs.efer & kEferLma) {
    if (size == CodeSize::Bits64) return DecodeMode::Long64;
    return size == CodeSize::Bits32 ? DecodeMode::Compat32 : DecodeMode::Compat16;
  }
  if (!(sregs.cr0 & kCr0Pe)) return DecodeMode::Real16;
  return size == CodeSize::Bits32 ? DecodeMode::Legacy32 : DecodeMode::Legacy16;
}

DecodeMode decode_mode(CodeSize size) {
  switch (size) {
    case CodeSize::Bits64: return DecodeMode::Long64;
    case CodeSize::Bits32: return DecodeMode::Legacy32;
    case CodeSize::Bits16: return DecodeMode::Legacy16;
  }
  return DecodeMode::Legacy16;
}

AssistResult<DecodedInsn> decode(std::span<const uint8_t> all, DecodeMode mode) {
  auto bytes = all.first(std::min(all.size(), kMaxInsnLength));
  ModeInfo zm = zydis_mode(mode);
  ZydisDecoder decoder;
  if (ZYAN_FAILED(ZydisDecoderInit(&decoder, zm.machine, zm.stack)))
    return make_error(EINVAL, "Zydis refused decoder mode {}", static_cast<int>(mode));
  ZydisDecodedInstruction insn;
  ZydisDecodedOperand ops[ZYDIS_MAX_OPERAND_COUNT];
  // The message's bytes, built only for a failure.
  auto hex = [&] { return format_bytes(bytes); };
  ZyanStatus st = bytes.empty() ? ZYDIS_STATUS_NO_MORE_DATA
                                : ZydisDecoderDecodeFull(&decoder, bytes.data(), bytes.size(), &insn, ops);
  if (st == ZYDIS_STATUS_NO_MORE_DATA || st == ZYDIS_STATUS_INSTRUCTION_TOO_LONG) {
    // Fifteen bytes that are not yet a whole instruction are an over-long one (#GP on hardware);
    // fewer means KVM did not hand over the rest.
    if (bytes.size() >= kMaxInsnLength || st == ZYDIS_STATUS_INSTRUCTION_TOO_LONG)
      return make_error(EINVAL, "instruction longer than 15 bytes {}", hex());
    return make_error(EINVAL, "truncated instruction {}", hex());
  }
  // LOCK on an instruction that does not accept it, or with a register destination (SDM vol. 2 LOCK).
  if (st == ZYDIS_STATUS_ILLEGAL_LOCK)
    return raise(Fault{Vector::UD, {}, {}}, "lock prefix on instruction {}", hex());
  if (ZYAN_FAILED(st)) return make_error(EOPNOTSUPP, "unsupported instruction {}", hex());
  // The x87 register-stack forms (D8..DF with ModRM.mod = 3) go to x86_x87.cpp, which holds the
  // allow-list; their operands are x87 registers, named by the ModRM byte itself.
  bool x87 = insn.opcode_map == ZYDIS_OPCODE_MAP_DEFAULT && insn.opcode >= 0xD8 && insn.opcode <= 0xDF &&
             insn.raw.modrm.mod == 3 && insn.encoding == ZYDIS_INSTRUCTION_ENCODING_LEGACY;
  auto kind = x87 ? AssistKind::X87 : assist_kind(insn.mnemonic);
  if (!kind && mode == DecodeMode::Long64) {
    auto replay = zydis::decode_replay(insn, ops, bytes);
    if (replay || replay.error().code() != EOPNOTSUPP) return replay;
  }
  if (!kind) return make_error(EOPNOTSUPP, "unsupported instruction {}", hex());

  DecodedInsn d{};
  d.kind = *kind;
  d.length = insn.length;
  d.operand_bits = insn.operand_width == 64 ? 64 : insn.operand_width == 32 ? 32 : 16;
  d.address_bits = insn.address_width == 64 ? 64 : insn.address_width == 32 ? 32 : 16;
  d.lock = (insn.attributes & ZYDIS_ATTRIB_HAS_LOCK) != 0;
  d.opcode = insn.opcode;
  d.modrm = static_cast<uint8_t>(insn.raw.modrm.mod << 6 | insn.raw.modrm.reg << 3 | insn.raw.modrm.rm);
  d.rex_w = insn.raw.rex.W != 0;
  d.vex = insn.encoding == ZYDIS_INSTRUCTION_ENCODING_VEX;
  if (x87) return d;
  bool seen_reg = false;
  for (unsigned i = 0; i < insn.operand_count_visible; ++i) {
    const ZydisDecodedOperand& op = ops[i];
    switch (op.type) {
      case ZYDIS_OPERAND_TYPE_REGISTER: {
        auto n = zydis::gpr_number(op.reg.value);
        if (!n) return make_error(EOPNOTSUPP, "unsupported instruction {} (register operand)", hex());
        // The ModRM.reg operand comes first where both are registers (popcnt r, r/m).
        if (op.encoding == ZYDIS_OPERAND_ENCODING_MODRM_RM) d.rm = *n;
        else if (!seen_reg) d.reg = *n, seen_reg = true;
        else d.rm = *n;
        break;
      }
      case ZYDIS_OPERAND_TYPE_MEMORY:
        d.mem = TRY(zydis::memory_operand(op, bytes));
        break;
      case ZYDIS_OPERAND_TYPE_IMMEDIATE:
        d.vector = static_cast<uint8_t>(op.imm.value.u);
        break;
      default:
        return make_error(EOPNOTSUPP, "unsupported instruction {} (operand)", hex());
    }
  }
  if (d.kind == AssistKind::Int3) d.vector = 3;
  if (d.kind == AssistKind::Int1) d.vector = 1;
  // Zydis sizes a flush's operand as the 64-byte line; the CPU checks it as a byte load (SDM vol. 2 CLFLUSH).
  bool flush = d.kind == AssistKind::Clflush || d.kind == AssistKind::Clflushopt || d.kind == AssistKind::Clwb;
  if (flush && d.mem) d.mem->size = 1;
  return d;
}

}  // namespace evmm::x86
