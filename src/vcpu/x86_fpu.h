// The x87/SSE/XSAVE family of emulation assists, as functions over the guest's FPU state.
//
// The state is the standard-format XSAVE area KVM hands out (KVM_GET_XSAVE2; SDM vol. 1 13.4):
// the 512-byte legacy region in its 64-bit layout (FIP and FDP 64 bits wide, as a 64-bit kernel's
// xsave64 writes it), the 64-byte header and the extended components at the offsets CPUID leaf 0xD
// gives. Each instruction is a function taking that state, the few CPU bits it consults (FpuCpu),
// and for memory forms a LinearMemory and the operand's linear address, already segment-checked by
// the caller. On a fault (returned in the AssistError, as x86::raise makes it) neither the state
// nor guest memory has changed; memory writes are staged and committed by the function itself
// only once every check has passed.
//
// Errors besides faults:
//   EOPNOTSUPP  xsavec/xsaves, an x87 opcode not on the allow-list, or a waiting
//               x87 instruction with an exception pending while CR0.NE is clear (the CPU would
//               signal FERR#, which evmm does not model)
//   EFAULT      the operand is not in guest RAM (with the #PF in the error when it is not mapped)
//
// Not modelled: #AC for misaligned operands with CR0.AM/RFLAGS.AC at CPL 3 (these assists run at
// CPL 0, where KVM's emulator hands instructions over); CPUID feature checks (FXSR, XSAVE, ...: KVM
// only hands over an instruction the host knows and evmm passes the host's CPUID through); XINUSE
// beyond what XSTATE_BV in KVM's area says; the FCS/FDS selectors (KVM's 64-bit layout has no
// room for them and this host deprecates them, CPUID.(EAX=7,ECX=0):EBX[13]); whether SSE counts as
// in use when XMM is initial but MXCSR is not (this host answers differently after different
// instructions; the assists keep XSTATE_BV[1] as the instruction's own rule says).
#pragma once

#include <array>
#include <cstdint>
#include <span>
#include <vector>

#include "vcpu/assist.h"
#include "vcpu/x86_fault.h"
#include "vcpu/x86_linear.h"

namespace evmm::x86 {

// XSAVE state components (SDM vol. 1 13.1) and the XCR0 bits that enable them.
namespace xfeature {
inline constexpr uint64_t kX87 = 1ull << 0;
inline constexpr uint64_t kSse = 1ull << 1;
inline constexpr uint64_t kAvx = 1ull << 2;
inline constexpr uint64_t kBndregs = 1ull << 3;
inline constexpr uint64_t kBndcsr = 1ull << 4;
inline constexpr uint64_t kAvx512 = 7ull << 5;  // opmask, ZMM_Hi256, Hi16_ZMM
inline constexpr uint64_t kPkru = 1ull << 9;
inline constexpr uint64_t kTileCfg = 1ull << 17;
inline constexpr uint64_t kTileData = 1ull << 18;
}  // namespace xfeature

inline constexpr uint64_t kCr0Mp = 1ull << 1;
inline constexpr uint64_t kCr0Em = 1ull << 2;
inline constexpr uint64_t kCr0Ts = 1ull << 3;
inline constexpr uint64_t kCr0Ne = 1ull << 5;
inline constexpr uint64_t kCr4Osfxsr = 1ull << 9;
inline constexpr uint64_t kCr4Osxmmexcpt = 1ull << 10;
inline constexpr uint64_t kCr4Osxsave = 1ull << 18;

// What the CPU says about its XSAVE support: CPUID leaf 0xD, and the MXCSR_MASK fxsave writes.
struct XsaveLayout {
  uint64_t xcr0_supported = 0;             // CPUID.(EAX=0DH,ECX=0):EDX:EAX
  bool xgetbv1 = false;                    // CPUID.(EAX=0DH,ECX=1):EAX[2], xgetbv with ECX=1
  uint32_t mxcsr_mask = 0xffbf;            // SDM vol. 1 11.6.6: 0 in the image means 0xffbf
  std::array<uint32_t, 64> offset{};       // standard-format offsets of components 2..63
  std::array<uint32_t, 64> size{};
  std::array<bool, 64> align64{};          // CPUID.(EAX=0DH,ECX=i):ECX[1]: 64-byte aligned when compacted
  bool xsavec = false;                     // CPUID.(EAX=0DH,ECX=1):EAX[1]: the compacted form exists
  uint32_t area_size(uint64_t components) const;  // bytes the standard form needs for these
  // The compacted form (SDM vol. 1 13.4.3): where component i (2..62) lies when the image holds
  // the components of xcomp_bv, and the bytes such an image takes.
  uint32_t compacted_offset(uint64_t xcomp_bv, unsigned i) const;
  uint32_t compacted_size(uint64_t xcomp_bv) const;

  // The host's, which KVM's area follows (the guest sees the host's CPUID leaf 0xD).
  static const XsaveLayout& host();
};

// The guest's XSAVE area with typed accessors for the legacy region and the header.
class FpuState {
 public:
  // Offsets in the legacy region (SDM vol. 1 table 10-2, the REX.W form) and the header.
  static constexpr size_t kFcw = 0, kFsw = 2, kFtw = 4, kFop = 6, kFip = 8, kFdp = 16, kMxcsr = 24,
                          kMxcsrMask = 28, kSt0 = 32, kXmm0 = 160, kLegacySize = 512, kXstateBv = 512,
                          kXcompBv = 520, kHeaderSize = 64, kMinSize = 576;

  // EINVAL when area is shorter than the legacy region and header.
  static Result<FpuState> create(std::vector<uint8_t> area, const XsaveLayout& layout = XsaveLayout::host());

  std::span<const uint8_t> bytes() const { return area_; }
  std::span<uint8_t> bytes() { return area_; }
  const XsaveLayout& layout() const { return *layout_; }

  uint64_t get(size_t offset, unsigned width) const;
  void set(size_t offset, uint64_t value, unsigned width);
  uint16_t fcw() const { return static_cast<uint16_t>(get(kFcw, 2)); }
  uint16_t fsw() const { return static_cast<uint16_t>(get(kFsw, 2)); }
  uint32_t mxcsr() const { return static_cast<uint32_t>(get(kMxcsr, 4)); }
  uint64_t xstate_bv() const { return get(kXstateBv, 8); }

  // An x87 exception is pending for the next waiting instruction (SDM vol. 1 8.6): an exception
  // flag in FSW that FCW does not mask. FSW.ES and B only summarise that: fxrstor/xrstor recompute
  // them from the flags and the mask (checked on the host by AssistFpuDifferential.FswSummaryIsDerived).
  bool x87_exception_pending() const;

 private:
  FpuState(std::vector<uint8_t> area, const XsaveLayout& layout) : area_(std::move(area)), layout_(&layout) {}
  std::vector<uint8_t> area_;
  const XsaveLayout* layout_;
};

// The CPU state the FPU instructions consult.
struct FpuCpu {
  uint64_t cr0 = 0, cr4 = 0, xcr0 = 1;
  uint8_t cpl = 0;
  bool bits64 = false;  // 64-bit mode: FIP is RIP
  uint64_t rip = 0;     // the instruction's offset, the FIP a non-control x87 instruction records
};
FpuCpu fpu_cpu(const CpuState& cpu, uint64_t xcr0);

// SSE control/status (SDM vol. 2 LDMXCSR, STMXCSR). vex: VLDMXCSR/VSTMXCSR, which check
// CR4.OSXSAVE and XCR0[2:1] instead of CR0.EM and CR4.OSFXSR (vol. 2 2.8, exception class 5).
AssistResult<void> ldmxcsr(FpuState& s, const FpuCpu& c, LinearMemory& mem, uint64_t linear, bool vex = false);
AssistResult<void> stmxcsr(const FpuState& s, const FpuCpu& c, LinearMemory& mem, uint64_t linear, bool vex = false);

// FXSAVE/FXRSTOR (SDM vol. 2; vol. 1 10.5.1). rex_w: the 64-bit form (FIP/FDP 64 bits wide).
AssistResult<void> fxsave(const FpuState& s, const FpuCpu& c, LinearMemory& mem, uint64_t linear, bool rex_w);
AssistResult<void> fxrstor(FpuState& s, const FpuCpu& c, LinearMemory& mem, uint64_t linear, bool rex_w);

// XGETBV returns the register's value; XSETBV returns XCR0's new value for the caller to write
// (AssistEnv::write_xcr0). SDM vol. 2 XGETBV, XSETBV.
AssistResult<uint64_t> xgetbv(const FpuState& s, const FpuCpu& c, uint32_t ecx);
AssistResult<uint64_t> xsetbv(const FpuState& s, const FpuCpu& c, uint32_t ecx, uint64_t value);

// XSAVE (and XSAVEOPT, which the SDM allows to save like XSAVE: vol. 1 13.9 lets it skip only
// unmodified components, never requires it to), standard form, and XRSTOR of either form (Linux
// restores its compacted init_fpstate with xrstor when the CPU has XSAVEC but not XSAVES). edx_eax is the
// instruction-specified mask; RFBM = XCR0 & edx_eax (SDM vol. 1 13.7, 13.8).
AssistResult<void> xsave(const FpuState& s, const FpuCpu& c, LinearMemory& mem, uint64_t linear, uint64_t edx_eax,
                         bool rex_w);
AssistResult<void> xrstor(FpuState& s, const FpuCpu& c, LinearMemory& mem, uint64_t linear, uint64_t edx_eax,
                          bool rex_w);

// FWAIT: #NM when CR0.MP and CR0.TS, #MF when an exception is pending and CR0.NE (SDM vol. 2 WAIT).
AssistResult<void> fwait(const FpuState& s, const FpuCpu& c);

// An x87 instruction without a memory operand (D8..DF with ModRM.mod = 3, SDM vol. 2 A.5.1),
// evaluated by running it on the host CPU with the guest's x87 state loaded (x86_x87.cpp).
// rax and rflags: fnstsw ax writes AX; fcomi/fucomi write ZF, PF, CF; fcmov reads them.
AssistResult<void> x87_register_op(FpuState& s, const FpuCpu& c, uint8_t op, uint8_t modrm, uint64_t& rax,
                                   uint64_t& rflags);
// Whether (op, modrm) is on the allow-list x87_register_op runs.
bool x87_register_op_valid(uint8_t op, uint8_t modrm);

}  // namespace evmm::x86
