// Which instructions the assists replay on the host CPU (x86_simd.h), and their host encoding.
// The allow-list is by ISA extension (Zydis's classification), narrowed by the operands: only
// general-purpose, XMM/YMM/ZMM and mask registers, RFLAGS and MXCSR, immediates, and at most one
// explicit memory operand, which the replay stages in a host buffer. Anything else (MMX and x87
// registers, implicit memory such as maskmovdqu's [rdi], gathers' vector indexes, the stack,
// control and segment registers) is refused, and so is an instruction the host CPU lacks: the
// replay would raise #UD in evmm itself.
#include <cpuid.h>

#include <algorithm>
#include <cstring>

#include "vcpu/x86_decode_zydis.h"

namespace evmm::x86::zydis {
namespace {

using Encoding = ReplayInsn::Encoding;

// CPUID feature bits (SDM vol. 2 CPUID, tables 3-10, 3-11, and leaf 7).
enum Feature : uint8_t {
  kSse, kSse2, kSse3, kSsse3, kSse41, kSse42, kPclmul, kAes, kAvx, kF16c, kFma,
  kBmi1, kAvx2, kBmi2, kAvx512f, kAvx512dq, kAdx, kAvx512ifma, kAvx512cd, kSha, kAvx512bw, kAvx512vl,
  kAvx512vbmi, kAvx512vbmi2, kGfni, kVaes, kVpclmulqdq, kAvx512vnni, kAvx512bitalg, kAvx512vpopcntdq,
  kAvxVnni, kAvx512bf16, kFeatureCount
};

struct FeatureBit {
  uint32_t leaf, subleaf;
  uint8_t reg;  // 0 eax, 1 ebx, 2 ecx, 3 edx
  uint8_t bit;
};
constexpr FeatureBit kFeatureBits[kFeatureCount] = {
    {1, 0, 3, 25}, {1, 0, 3, 26}, {1, 0, 2, 0},  {1, 0, 2, 9},  {1, 0, 2, 19}, {1, 0, 2, 20}, {1, 0, 2, 1},
    {1, 0, 2, 25}, {1, 0, 2, 28}, {1, 0, 2, 29}, {1, 0, 2, 12}, {7, 0, 1, 3},  {7, 0, 1, 5},  {7, 0, 1, 8},
    {7, 0, 1, 16}, {7, 0, 1, 17}, {7, 0, 1, 19}, {7, 0, 1, 21}, {7, 0, 1, 28}, {7, 0, 1, 29}, {7, 0, 1, 30},
    {7, 0, 1, 31}, {7, 0, 2, 1},  {7, 0, 2, 6},  {7, 0, 2, 8},  {7, 0, 2, 9},  {7, 0, 2, 10}, {7, 0, 2, 11},
    {7, 0, 2, 12}, {7, 0, 2, 14}, {7, 1, 0, 4},  {7, 1, 0, 5},
};

bool host_has(Feature f) {
  static const auto bits = [] {
    std::array<bool, kFeatureCount> has{};
    for (size_t i = 0; i < kFeatureCount; ++i) {
      unsigned r[4] = {};
      const FeatureBit& b = kFeatureBits[i];
      if (__get_cpuid_count(b.leaf, b.subleaf, &r[0], &r[1], &r[2], &r[3])) has[i] = (r[b.reg] >> b.bit) & 1;
    }
    return has;
  }();
  return bits[f];
}

// The features an ISA set needs; false for a set the replay does not take.
bool host_runs(ZydisISASet set) {
  auto all = [](std::initializer_list<Feature> fs) { return std::all_of(fs.begin(), fs.end(), host_has); };
  switch (set) {
    case ZYDIS_ISA_SET_SSE: return all({kSse});
    case ZYDIS_ISA_SET_SSE2: return all({kSse2});
    case ZYDIS_ISA_SET_SSE3: return all({kSse3});
    case ZYDIS_ISA_SET_SSSE3: return all({kSsse3});
    case ZYDIS_ISA_SET_SSE4: return all({kSse41});
    case ZYDIS_ISA_SET_SSE42: return all({kSse42});
    case ZYDIS_ISA_SET_AES: return all({kAes});
    case ZYDIS_ISA_SET_PCLMULQDQ: return all({kPclmul});
    case ZYDIS_ISA_SET_SHA: return all({kSha});
    case ZYDIS_ISA_SET_GFNI: return all({kGfni});
    case ZYDIS_ISA_SET_AVX: return all({kAvx});
    case ZYDIS_ISA_SET_AVX2: return all({kAvx2});
    case ZYDIS_ISA_SET_AVXAES: return all({kAvx, kAes});
    case ZYDIS_ISA_SET_AVX_GFNI: return all({kAvx, kGfni});
    case ZYDIS_ISA_SET_AVX_VNNI: return all({kAvxVnni});
    case ZYDIS_ISA_SET_F16C: return all({kF16c});
    case ZYDIS_ISA_SET_FMA: return all({kFma});
    case ZYDIS_ISA_SET_VAES: return all({kAvx, kVaes});
    case ZYDIS_ISA_SET_VPCLMULQDQ: return all({kAvx, kVpclmulqdq});
    case ZYDIS_ISA_SET_BMI1: return all({kBmi1});
    case ZYDIS_ISA_SET_BMI2: return all({kBmi2});
    case ZYDIS_ISA_SET_ADOX_ADCX: return all({kAdx});
    case ZYDIS_ISA_SET_AVX512F_512: case ZYDIS_ISA_SET_AVX512F_SCALAR: case ZYDIS_ISA_SET_AVX512F_KOP:
      return all({kAvx512f});
    case ZYDIS_ISA_SET_AVX512F_128: case ZYDIS_ISA_SET_AVX512F_128N: case ZYDIS_ISA_SET_AVX512F_256:
      return all({kAvx512f, kAvx512vl});
    case ZYDIS_ISA_SET_AVX512BW_512: case ZYDIS_ISA_SET_AVX512BW_KOP: return all({kAvx512bw});
    case ZYDIS_ISA_SET_AVX512BW_128: case ZYDIS_ISA_SET_AVX512BW_128N: case ZYDIS_ISA_SET_AVX512BW_256:
      return all({kAvx512bw, kAvx512vl});
    case ZYDIS_ISA_SET_AVX512DQ_512: case ZYDIS_ISA_SET_AVX512DQ_KOP: case ZYDIS_ISA_SET_AVX512DQ_SCALAR:
      return all({kAvx512dq});
    case ZYDIS_ISA_SET_AVX512DQ_128: case ZYDIS_ISA_SET_AVX512DQ_128N: case ZYDIS_ISA_SET_AVX512DQ_256:
      return all({kAvx512dq, kAvx512vl});
    case ZYDIS_ISA_SET_AVX512CD_512: return all({kAvx512cd});
    case ZYDIS_ISA_SET_AVX512CD_128: case ZYDIS_ISA_SET_AVX512CD_256: return all({kAvx512cd, kAvx512vl});
    case ZYDIS_ISA_SET_AVX512_IFMA_512: return all({kAvx512ifma});
    case ZYDIS_ISA_SET_AVX512_IFMA_128: case ZYDIS_ISA_SET_AVX512_IFMA_256: return all({kAvx512ifma, kAvx512vl});
    case ZYDIS_ISA_SET_AVX512_VBMI_512: return all({kAvx512vbmi});
    case ZYDIS_ISA_SET_AVX512_VBMI_128: case ZYDIS_ISA_SET_AVX512_VBMI_256: return all({kAvx512vbmi, kAvx512vl});
    case ZYDIS_ISA_SET_AVX512_VBMI2_512: return all({kAvx512vbmi2});
    case ZYDIS_ISA_SET_AVX512_VBMI2_128: case ZYDIS_ISA_SET_AVX512_VBMI2_256:
      return all({kAvx512vbmi2, kAvx512vl});
    case ZYDIS_ISA_SET_AVX512_VNNI_512: return all({kAvx512vnni});
    case ZYDIS_ISA_SET_AVX512_VNNI_128: case ZYDIS_ISA_SET_AVX512_VNNI_256: return all({kAvx512vnni, kAvx512vl});
    case ZYDIS_ISA_SET_AVX512_BITALG_512: return all({kAvx512bitalg});
    case ZYDIS_ISA_SET_AVX512_BITALG_128: case ZYDIS_ISA_SET_AVX512_BITALG_256:
      return all({kAvx512bitalg, kAvx512vl});
    case ZYDIS_ISA_SET_AVX512_VPOPCNTDQ_512: return all({kAvx512vpopcntdq});
    case ZYDIS_ISA_SET_AVX512_VPOPCNTDQ_128: case ZYDIS_ISA_SET_AVX512_VPOPCNTDQ_256:
      return all({kAvx512vpopcntdq, kAvx512vl});
    case ZYDIS_ISA_SET_AVX512_GFNI_512: return all({kAvx512f, kGfni});
    case ZYDIS_ISA_SET_AVX512_GFNI_128: case ZYDIS_ISA_SET_AVX512_GFNI_256: return all({kAvx512vl, kGfni});
    case ZYDIS_ISA_SET_AVX512_VAES_512: return all({kAvx512f, kVaes});
    case ZYDIS_ISA_SET_AVX512_VAES_128: case ZYDIS_ISA_SET_AVX512_VAES_256: return all({kAvx512vl, kVaes});
    case ZYDIS_ISA_SET_AVX512_VPCLMULQDQ_512: return all({kAvx512f, kVpclmulqdq});
    case ZYDIS_ISA_SET_AVX512_VPCLMULQDQ_128: case ZYDIS_ISA_SET_AVX512_VPCLMULQDQ_256:
      return all({kAvx512vl, kVpclmulqdq});
    case ZYDIS_ISA_SET_AVX512_BF16_512: return all({kAvx512bf16});
    case ZYDIS_ISA_SET_AVX512_BF16_128: case ZYDIS_ISA_SET_AVX512_BF16_256: return all({kAvx512bf16, kAvx512vl});
    default: return false;  // MMX forms, fisttp, prefetches, the MXCSR loads (their own kinds) ...
  }
}

std::optional<AssistKind> replay_kind(const ZydisDecodedInstruction& insn) {
  switch (insn.meta.isa_ext) {
    case ZYDIS_ISA_EXT_BMI1: case ZYDIS_ISA_EXT_BMI2: case ZYDIS_ISA_EXT_ADOX_ADCX: return AssistKind::Bmi;
    case ZYDIS_ISA_EXT_SSE: case ZYDIS_ISA_EXT_SSE2: case ZYDIS_ISA_EXT_SSE3: case ZYDIS_ISA_EXT_SSSE3:
    case ZYDIS_ISA_EXT_SSE4: case ZYDIS_ISA_EXT_AES: case ZYDIS_ISA_EXT_PCLMULQDQ: case ZYDIS_ISA_EXT_SHA:
    case ZYDIS_ISA_EXT_GFNI: case ZYDIS_ISA_EXT_AVX: case ZYDIS_ISA_EXT_AVX2: case ZYDIS_ISA_EXT_AVXAES:
    case ZYDIS_ISA_EXT_AVX_VNNI: case ZYDIS_ISA_EXT_F16C: case ZYDIS_ISA_EXT_FMA: case ZYDIS_ISA_EXT_VAES:
    case ZYDIS_ISA_EXT_VPCLMULQDQ: case ZYDIS_ISA_EXT_AVX512EVEX: case ZYDIS_ISA_EXT_AVX512VEX:
      break;
    default:
      return std::nullopt;
  }
  switch (insn.encoding) {
    case ZYDIS_INSTRUCTION_ENCODING_LEGACY: return AssistKind::Sse;
    case ZYDIS_INSTRUCTION_ENCODING_VEX: return AssistKind::Avx;
    case ZYDIS_INSTRUCTION_ENCODING_EVEX: return AssistKind::Avx512;
    default: return std::nullopt;
  }
}

bool is_one_of(ZydisMnemonic m, std::initializer_list<ZydisMnemonic> list) {
  return std::find(list.begin(), list.end(), m) != list.end();
}

// The memory operand's alignment rule (SDM vol. 2 2.4 and 2.7, exception classes 1 and 4; vol. 1
// 11.4.1): the aligned moves and non-temporal accesses need the operand's size in every encoding;
// other legacy-SSE instructions with a 16-byte operand need 16 bytes, except the named unaligned ones.
uint8_t alignment(const ZydisDecodedInstruction& insn, unsigned size) {
  if (is_one_of(insn.mnemonic, {ZYDIS_MNEMONIC_MOVAPS, ZYDIS_MNEMONIC_MOVAPD, ZYDIS_MNEMONIC_MOVDQA,
                                ZYDIS_MNEMONIC_MOVNTPS, ZYDIS_MNEMONIC_MOVNTPD, ZYDIS_MNEMONIC_MOVNTDQ,
                                ZYDIS_MNEMONIC_MOVNTDQA, ZYDIS_MNEMONIC_VMOVAPS, ZYDIS_MNEMONIC_VMOVAPD,
                                ZYDIS_MNEMONIC_VMOVDQA, ZYDIS_MNEMONIC_VMOVDQA32, ZYDIS_MNEMONIC_VMOVDQA64,
                                ZYDIS_MNEMONIC_VMOVNTPS, ZYDIS_MNEMONIC_VMOVNTPD, ZYDIS_MNEMONIC_VMOVNTDQ,
                                ZYDIS_MNEMONIC_VMOVNTDQA}))
    return static_cast<uint8_t>(size);
  if (insn.encoding != ZYDIS_INSTRUCTION_ENCODING_LEGACY || size != 16) return 1;
  if (is_one_of(insn.mnemonic, {ZYDIS_MNEMONIC_MOVUPS, ZYDIS_MNEMONIC_MOVUPD, ZYDIS_MNEMONIC_MOVDQU,
                                ZYDIS_MNEMONIC_LDDQU, ZYDIS_MNEMONIC_PCMPESTRI, ZYDIS_MNEMONIC_PCMPESTRM,
                                ZYDIS_MNEMONIC_PCMPISTRI, ZYDIS_MNEMONIC_PCMPISTRM}))
    return 1;
  return 16;
}

bool is_legacy_prefix(uint8_t b) {
  switch (b) {
    case 0xf0: case 0xf2: case 0xf3: case 0x2e: case 0x36: case 0x3e: case 0x26: case 0x64: case 0x65:
    case 0x66: case 0x67: return true;
    default: return false;
  }
}

}  // namespace

AssistResult<DecodedInsn> decode_replay(const ZydisDecodedInstruction& insn, const ZydisDecodedOperand* ops,
                                        std::span<const uint8_t> bytes) {
  auto hex = [&] { return format_bytes(bytes.first(std::min<size_t>(bytes.size(), insn.length))); };
  auto kind = replay_kind(insn);
  if (!kind) return make_error(EOPNOTSUPP, "unsupported instruction {}", hex());
  if (!host_runs(insn.meta.isa_set))
    return make_error(EOPNOTSUPP, "unsupported instruction {} ({} is not replayed on this host)", hex(),
                      ZydisISASetGetString(insn.meta.isa_set));
  DecodedInsn d{};
  d.kind = *kind;
  d.length = insn.length;
  d.operand_bits = insn.operand_width == 64 ? 64 : insn.operand_width == 32 ? 32 : 16;
  d.address_bits = insn.address_width == 64 ? 64 : insn.address_width == 32 ? 32 : 16;
  d.opcode = insn.opcode;
  d.rex_w = insn.raw.rex.W != 0;
  d.vex = insn.encoding == ZYDIS_INSTRUCTION_ENCODING_VEX;
  ReplayInsn r;
  r.mnemonic = ZydisMnemonicGetString(insn.mnemonic);
  r.encoding = insn.encoding == ZYDIS_INSTRUCTION_ENCODING_LEGACY ? Encoding::Legacy
               : insn.encoding == ZYDIS_INSTRUCTION_ENCODING_VEX  ? Encoding::Vex
                                                                  : Encoding::Evex;
  r.avx512 = r.encoding == Encoding::Evex;
  auto refuse = [&](const char* why) { return make_error(EOPNOTSUPP, "unsupported instruction {} ({})", hex(), why); };
  const ZydisDecodedOperand* mem = nullptr;
  for (unsigned i = 0; i < insn.operand_count; ++i) {
    const ZydisDecodedOperand& op = ops[i];
    switch (op.type) {
      case ZYDIS_OPERAND_TYPE_REGISTER:
        switch (ZydisRegisterGetClass(op.reg.value)) {
          case ZYDIS_REGCLASS_GPR8: case ZYDIS_REGCLASS_GPR16: case ZYDIS_REGCLASS_GPR32: case ZYDIS_REGCLASS_GPR64:
            // The host's RSP stays the host's: the replay loads every other general register.
            if (ZydisRegisterGetLargestEnclosing(ZYDIS_MACHINE_MODE_LONG_64, op.reg.value) == ZYDIS_REGISTER_RSP)
              return refuse("names the stack pointer");
            break;
          case ZYDIS_REGCLASS_XMM: case ZYDIS_REGCLASS_YMM: case ZYDIS_REGCLASS_ZMM:
            r.vector = true;
            break;
          case ZYDIS_REGCLASS_MASK:
            r.vector = r.avx512 = true;
            break;
          case ZYDIS_REGCLASS_FLAGS:
            break;
          default:
            if (op.reg.value != ZYDIS_REGISTER_MXCSR) return refuse("register operand");
            r.uses_mxcsr = true;
        }
        break;
      case ZYDIS_OPERAND_TYPE_MEMORY:
        if (op.visibility != ZYDIS_OPERAND_VISIBILITY_EXPLICIT || mem) return refuse("implicit memory operand");
        mem = &op;
        break;
      case ZYDIS_OPERAND_TYPE_IMMEDIATE:
        break;
      default:
        return refuse("operand");
    }
  }
  // vzeroupper and vzeroall name no register, yet write them all (SDM vol. 2 VZEROUPPER).
  if (is_one_of(insn.mnemonic, {ZYDIS_MNEMONIC_VZEROUPPER, ZYDIS_MNEMONIC_VZEROALL})) r.vector = true;
  if (*kind == AssistKind::Bmi && r.vector) return refuse("vector register in a BMI instruction");
  size_t pos = 0;
  // Segment overrides and 67 would change the host's access, not the guest's: the address is
  // evmm's (x86_operand.h). 66, F2 and F3 select the instruction and stay, in their order; a REX
  // counts only right before the opcode (SDM vol. 2 2.2.1), so only that one stays.
  // A prefix given twice counts once, and of F2 and F3 the last one given decides, so only a
  // prefix's last occurrence is kept: a guest's 15 bytes of repeated 66s would otherwise grow past
  // 15 with the disp32 below, and the host would raise #UD on its own copy (the fuzzer found this).
  size_t i = 0;
  while (i < insn.length && (is_legacy_prefix(bytes[i]) || (bytes[i] & 0xf0) == 0x40)) ++i;
  auto repeated_later = [&](size_t j) {
    for (size_t k = j + 1; k < i; ++k)
      if (bytes[k] == bytes[j]) return true;
    return false;
  };
  for (size_t j = 0; j < i; ++j)
    if (((bytes[j] == 0x66 || bytes[j] == 0xf2 || bytes[j] == 0xf3) && !repeated_later(j)) ||
        ((bytes[j] & 0xf0) == 0x40 && j + 1 == i))
      r.bytes[pos++] = bytes[j];
  if (mem) {
    d.mem = TRY(memory_operand(*mem, bytes));
    if (insn.avx.broadcast.mode != ZYDIS_BROADCAST_MODE_INVALID)
      d.mem->size = static_cast<uint16_t>(std::max<unsigned>(mem->element_size / 8, 1));
    r.mem_read = mem->actions & ZYDIS_OPERAND_ACTION_MASK_READ;
    r.mem_write = mem->actions & ZYDIS_OPERAND_ACTION_MASK_WRITE;
    r.masked = (insn.encoding == ZYDIS_INSTRUCTION_ENCODING_EVEX && insn.avx.mask.reg != ZYDIS_REGISTER_NONE &&
                insn.avx.mask.reg != ZYDIS_REGISTER_K0) ||
               is_one_of(insn.mnemonic, {ZYDIS_MNEMONIC_VMASKMOVPS, ZYDIS_MNEMONIC_VMASKMOVPD,
                                         ZYDIS_MNEMONIC_VPMASKMOVD, ZYDIS_MNEMONIC_VPMASKMOVQ});
    r.align = alignment(insn, d.mem->size);
    if (d.mem->size > 64) return refuse("memory operand larger than 64 bytes");
    // Up to ModRM as given; then ModRM with mod 00, r/m 101: [rip + disp32] (SDM vol. 2 table 2-7),
    // which ignores REX.B/X and VEX/EVEX B/X; then the immediate, if any.
    size_t modrm = insn.raw.modrm.offset;
    for (; i < modrm; ++i) r.bytes[pos++] = bytes[i];
    r.bytes[pos++] = static_cast<uint8_t>((bytes[modrm] & 0x38) | 0x05);
    r.disp_offset = static_cast<uint8_t>(pos);
    pos += 4;
    size_t tail = modrm + 1 + (insn.raw.modrm.mod != 3 && insn.raw.modrm.rm == 4 ? 1 : 0) + insn.raw.disp.size / 8;
    for (i = tail; i < insn.length; ++i) r.bytes[pos++] = bytes[i];
  } else {
    for (; i < insn.length; ++i) r.bytes[pos++] = bytes[i];
  }
  // At most 66, F2, F3 and REX, three opcode bytes, ModRM, disp32 and imm8: 13. Checked all the same.
  if (pos > kMaxInsnLength) return refuse("host encoding longer than 15 bytes");
  r.length = static_cast<uint8_t>(pos);
  d.replay = r;
  return d;
}

}  // namespace evmm::x86::zydis
