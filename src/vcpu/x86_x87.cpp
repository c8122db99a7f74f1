// x87 instructions without a memory operand, evaluated exactly by the host CPU: the guest's x87
// registers are loaded with fxrstor, the instruction's two bytes run, and fxsave takes the result,
// all inside one asm statement that saves and restores the host's own x87/SSE state around it.
// An unmasked exception the instruction raises only sets FSW.ES in the saved image: no waiting
// x87 instruction runs while the guest's state is loaded, and a waiting guest instruction is not
// run at all while an exception is pending (it raises #MF instead, SDM vol. 1 8.6).
// A signal arriving while the guest's registers are loaded (the vCPU kick) is safe: Linux saves
// the interrupted FPU state in the signal frame, runs the handler with a clean one and restores
// it on return.
#include <array>
#include <cstring>
#include <utility>

#include "vcpu/x86_arch.h"
#include "vcpu/x86_fpu.h"

namespace evmm::x86 {

namespace {

namespace fl = rflags;

// The valid D8..DF forms with ModRM.mod = 3 (SDM vol. 2 A.5.1, the x87 opcode map, and the
// instruction pages).
// Undocumented aliases (fstp1, fxch4, fcom2, ffreep, fneni, ...) are left out on purpose.
constexpr bool valid_form(uint8_t op, uint8_t m) {
  if (m < 0xc0) return false;
  switch (op) {
    case 0xd8: return true;  // fadd fmul fcom fcomp fsub fsubr fdiv fdivr st(0), st(i)
    case 0xd9:
      if (m <= 0xcf) return true;  // fld st(i), fxch
      if (m == 0xd0) return true;  // fnop
      if (m == 0xe0 || m == 0xe1 || m == 0xe4 || m == 0xe5) return true;  // fchs fabs ftst fxam
      if (m >= 0xe8 && m <= 0xee) return true;  // fld1 fldl2t fldl2e fldpi fldlg2 fldln2 fldz
      return m >= 0xf0;  // f2xm1 ... fcos
    case 0xda: return m <= 0xdf || m == 0xe9;  // fcmovb/e/be/u, fucompp
    case 0xdb: return m <= 0xdf || m == 0xe2 || m == 0xe3 || (m >= 0xe8 && m <= 0xf7);  // fcmovn*, fnclex, fninit, fucomi, fcomi
    case 0xdc: return m <= 0xcf || m >= 0xe0;  // fadd fmul, fsubr fsub fdivr fdiv st(i), st(0)
    case 0xdd: return m <= 0xc7 || (m >= 0xd0 && m <= 0xef);  // ffree, fst, fstp, fucom, fucomp
    case 0xde: return m <= 0xcf || m == 0xd9 || m >= 0xe0;  // faddp fmulp fcompp fsubrp fsubp fdivrp fdivp
    case 0xdf: return m == 0xe0 || (m >= 0xe8 && m <= 0xf7);  // fnstsw ax, fucomip, fcomip
    default: return false;
  }
}

// fnclex, fninit and fnstsw do not check for pending exceptions (SDM vol. 1 8.3.11).
constexpr bool is_waiting(uint8_t op, uint8_t m) {
  return !(op == 0xdb && (m == 0xe2 || m == 0xe3)) && !(op == 0xdf && m == 0xe0);
}
// fcomi, fcomip, fucomi, fucomip write ZF, PF, CF and clear OF, SF, AF (SDM vol. 2 FCOMI).
constexpr bool writes_eflags(uint8_t op, uint8_t m) { return (op == 0xdb || op == 0xdf) && m >= 0xe8 && m <= 0xf7; }

struct Native {
  uint8_t* guest;  // 512-byte fxsave image, 16-byte aligned: in and out
  uint8_t* host;   // scratch for the host's own state
  uint16_t ax;     // in and out (fnstsw ax)
  uint8_t flags;   // SF ZF AF PF CF in sahf/lahf layout: in and out
};

template <uint8_t Op, uint8_t Modrm>
void run_native(Native& n) {
  uint16_t ax = n.ax;
  uint8_t flags = n.flags;
  // rax holds the guest's AH for sahf and AX for the instruction; the flags the instruction reads
  // (fcmov) and writes (fcomi) go in and out through sahf/lahf, so nothing touches the stack. The
  // flags byte lives in bl, cl or dl ("Q"): an instruction that names ah cannot have a REX prefix,
  // so sil, dil or r8b-r15b, which the compiler may otherwise pick (it did under TSan), cannot meet ah.
  asm volatile(
      "fxsave64 (%[host])\n\t"
      "fxrstor64 (%[guest])\n\t"
      "movb %[fl], %%ah\n\t"
      "sahf\n\t"
      "movw %[ax], %%ax\n\t"
      ".byte %c[op], %c[modrm]\n\t"
      "movw %%ax, %[ax]\n\t"
      "lahf\n\t"
      "movb %%ah, %[fl]\n\t"
      "fxsave64 (%[guest])\n\t"
      "fxrstor64 (%[host])\n\t"
      : [ax] "+r"(ax), [fl] "+Q"(flags)
      : [guest] "r"(n.guest), [host] "r"(n.host), [op] "i"(Op), [modrm] "i"(Modrm)
      : "rax", "cc", "memory");
  n.ax = ax;
  n.flags = flags;
}

using NativeFn = void (*)(Native&);

template <size_t I>
constexpr NativeFn entry() {
  constexpr uint8_t op = static_cast<uint8_t>(0xd8 + I / 64), modrm = static_cast<uint8_t>(0xc0 + I % 64);
  if constexpr (valid_form(op, modrm)) return &run_native<op, modrm>;
  else return nullptr;
}

template <size_t... I>
constexpr std::array<NativeFn, sizeof...(I)> make_table(std::index_sequence<I...>) {
  return {entry<I>()...};
}

// Only the allow-listed opcodes are instantiated; everything else is nullptr and never executed.
constexpr auto kTable = make_table(std::make_index_sequence<8 * 64>());

}  // namespace

bool x87_register_op_valid(uint8_t op, uint8_t modrm) { return valid_form(op, modrm); }

AssistResult<void> x87_register_op(FpuState& s, const FpuCpu& c, uint8_t op, uint8_t modrm, uint64_t& rax,
                                   uint64_t& rflags) {
  if (!valid_form(op, modrm)) return make_error(EOPNOTSUPP, "x87 instruction {:02x} {:02x} is not on the allow-list", op, modrm);
  // SDM vol. 2, x87 instruction pages: #NM when CR0.EM or CR0.TS, then #MF for a pending exception.
  if (c.cr0 & (kCr0Em | kCr0Ts))
    return raise(Fault{Vector::NM, {}, {}}, "x87 {:02x} {:02x} with CR0.EM or CR0.TS set", op, modrm);
  if (is_waiting(op, modrm) && s.x87_exception_pending()) {
    if (!(c.cr0 & kCr0Ne))
      return make_error(EOPNOTSUPP, "x87 {:02x} {:02x} with an exception pending (FSW {:#x}) and CR0.NE clear: FERR# is not modelled",
                        op, modrm, s.fsw());
    return raise(Fault{Vector::MF, {}, {}}, "x87 {:02x} {:02x} with an exception pending (FSW {:#x})", op, modrm, s.fsw());
  }

  alignas(16) uint8_t guest[FpuState::kLegacySize] = {};
  alignas(16) uint8_t host[FpuState::kLegacySize];
  if (!(s.xstate_bv() & xfeature::kX87)) {
    // Not in use: the initial configuration (SDM vol. 1 13.6).
    guest[FpuState::kFcw] = 0x7f;
    guest[FpuState::kFcw + 1] = 0x03;
  } else {
    std::memcpy(guest, s.bytes().data(), FpuState::kMxcsr);
    std::memcpy(guest + FpuState::kSt0, s.bytes().data() + FpuState::kSt0, FpuState::kXmm0 - FpuState::kSt0);
  }
  // MXCSR is loaded by fxrstor too: the host's default, so that no reserved bit can fault here.
  uint32_t mxcsr = 0x1f80;
  std::memcpy(guest + FpuState::kMxcsr, &mxcsr, 4);
  uint64_t fip_in;
  std::memcpy(&fip_in, guest + FpuState::kFip, 8);

  constexpr uint8_t kLahfMask = 0xd5;  // SF ZF AF PF CF
  Native n{guest, host, static_cast<uint16_t>(rax), static_cast<uint8_t>((rflags & kLahfMask) | 2)};
  kTable[(op - 0xd8) * 64 + (modrm - 0xc0)](n);

  // The host recorded its own instruction pointer; the guest's CPU records the instruction's
  // offset (and no FCS on this layout). fninit zeroes it and the other control instructions
  // (fnclex, fnstsw) keep it (SDM vol. 1 8.1.8). FDP is left as the host left it: no memory operand here.
  uint64_t fip_out;
  std::memcpy(&fip_out, guest + FpuState::kFip, 8);
  bool recorded = is_waiting(op, modrm) && fip_out != fip_in;
  s.set(FpuState::kFip, recorded ? (c.bits64 ? c.rip : c.rip & 0xffffffff) : fip_out, 8);
  std::memcpy(s.bytes().data(), guest, FpuState::kFip);
  std::memcpy(s.bytes().data() + FpuState::kFdp, guest + FpuState::kFdp, 8);
  std::memcpy(s.bytes().data() + FpuState::kSt0, guest + FpuState::kSt0, FpuState::kXmm0 - FpuState::kSt0);
  // XINUSE[0]: fnstsw changes no x87 state, and the host leaves the bit as it was (checked by
  // the differential test); every other form puts the x87 state in use.
  if (!(op == 0xdf && modrm == 0xe0)) s.set(FpuState::kXstateBv, s.xstate_bv() | xfeature::kX87, 8);

  if (op == 0xdf && modrm == 0xe0) rax = (rax & ~0xffffull) | n.ax;
  if (writes_eflags(op, modrm))
    rflags = (rflags & ~(uint64_t{kLahfMask} | fl::kOF)) | (n.flags & kLahfMask);
  return {};
}

}  // namespace evmm::x86
