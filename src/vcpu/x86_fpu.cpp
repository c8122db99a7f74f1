#include "vcpu/x86_fpu.h"

#include <cpuid.h>

#include <algorithm>
#include <cstring>

#include "vcpu/x86_arch.h"

// Not modelled, besides what x86_fpu.h lists:
// - With CR4.OSFXSR clear, fxsave/fxrstor skip MXCSR and XMM: the SDM calls this implementation-
//   dependent (vol. 2 FXSAVE), AMD's manual documents it, and KVM's own emulator does the same.
//   A user-mode test cannot clear CR4.OSFXSR, so the host's choice is not checked.
// - Outside 64-bit mode XMM8-15 are neither saved nor restored, and their bytes are left as they are.
// - XINUSE is XSTATE_BV of KVM's area: a component restored from an image with its bit set stays
//   "in use" even when its values are the initial ones (hardware may clear it; SDM vol. 1 13.6).

namespace evmm::x86 {

namespace {

// x87 initial configuration (SDM vol. 1 13.6, FNINIT): FCW 037FH, all else 0.
constexpr uint16_t kFcwInit = 0x037f;
constexpr uint32_t kMxcsrInit = 0x1f80;
// x87 bytes of the legacy region: FCW..FDP, then the ST registers; MXCSR sits between.
constexpr size_t kX87HeadEnd = FpuState::kMxcsr, kSt0 = FpuState::kSt0, kX87End = FpuState::kXmm0;

template <typename... Args>
auto fault(Vector v, std::optional<uint32_t> code, fmt::format_string<Args...> f, Args&&... args) {
  return raise(Fault{v, code, {}}, f, std::forward<Args>(args)...);
}

unsigned xmm_count(const FpuCpu& c) { return c.bits64 ? 16 : 8; }

// The 512-byte legacy image as fxsave/xsave write it: FIP and FDP 64 bits wide with REX.W; else
// the low 32 bits followed by the FCS/FDS selectors, which this layout does not keep (0, as on a
// CPU that deprecates them: CPUID.(EAX=7,ECX=0):EBX[13]).
void narrow_pointers(uint8_t* image, bool rex_w) {
  if (rex_w) return;
  std::memset(image + FpuState::kFip + 4, 0, 4);
  std::memset(image + FpuState::kFdp + 4, 0, 4);
}

// Component values as the instructions see them: the initial configuration where XSTATE_BV says
// the component is not in use (KVM fills these in too; a test's state may not).
std::vector<uint8_t> effective(const FpuState& s) {
  std::vector<uint8_t> a(s.bytes().begin(), s.bytes().end());
  uint64_t bv = s.xstate_bv();
  if (!(bv & xfeature::kX87)) {
    std::memset(a.data(), 0, kX87HeadEnd);
    std::memset(a.data() + kSt0, 0, kX87End - kSt0);
    a[FpuState::kFcw] = kFcwInit & 0xff;
    a[FpuState::kFcw + 1] = kFcwInit >> 8;
  }
  if (!(bv & xfeature::kSse)) std::memset(a.data() + FpuState::kXmm0, 0, 256);
  const XsaveLayout& l = s.layout();
  for (unsigned i = 2; i < 64; ++i)
    if (!(bv & (1ull << i)) && l.size[i] && l.offset[i] + l.size[i] <= a.size())
      std::memset(a.data() + l.offset[i], 0, l.size[i]);
  return a;
}

// The x87 part of a legacy image into the state; the 32-bit form zero-extends FIP and FDP.
void load_x87(FpuState& s, const uint8_t* image, bool rex_w) {
  auto bytes = s.bytes();
  std::memcpy(bytes.data(), image, kX87HeadEnd);
  std::memcpy(bytes.data() + kSt0, image + kSt0, kX87End - kSt0);
  if (!rex_w) {
    s.set(FpuState::kFip, s.get(FpuState::kFip, 4), 8);
    s.set(FpuState::kFdp, s.get(FpuState::kFdp, 4), 8);
  }
}

void init_x87(FpuState& s) {
  auto bytes = s.bytes();
  std::memset(bytes.data(), 0, kX87HeadEnd);
  std::memset(bytes.data() + kSt0, 0, kX87End - kSt0);
  s.set(FpuState::kFcw, kFcwInit, 2);
}

uint32_t mxcsr_mask(const FpuState& s) { return s.layout().mxcsr_mask; }

AssistResult<void> check_sse(const FpuCpu& c, const char* what, bool vex) {
  // SDM vol. 2 2.8 (exception class 5): #UD before #NM.
  if (vex) {
    if (!(c.cr4 & kCr4Osxsave)) return fault(Vector::UD, {}, "v{} with CR4.OSXSAVE clear", what);
    if ((c.xcr0 & 6) != 6) return fault(Vector::UD, {}, "v{} with XCR0 {:#x} (SSE and AVX not both on)", what, c.xcr0);
  } else {
    if (c.cr0 & kCr0Em) return fault(Vector::UD, {}, "{} with CR0.EM set", what);
    if (!(c.cr4 & kCr4Osfxsr)) return fault(Vector::UD, {}, "{} with CR4.OSFXSR clear", what);
  }
  if (c.cr0 & kCr0Ts) return fault(Vector::NM, {}, "{} with CR0.TS set", what);
  return {};
}

AssistResult<void> check_xsave(const FpuCpu& c, const char* what) {
  if (!(c.cr4 & kCr4Osxsave)) return fault(Vector::UD, {}, "{} with CR4.OSXSAVE clear", what);
  if (c.cr0 & kCr0Ts) return fault(Vector::NM, {}, "{} with CR0.TS set", what);
  return {};
}

}  // namespace

uint32_t XsaveLayout::area_size(uint64_t components) const {
  uint32_t end = FpuState::kMinSize;
  for (unsigned i = 2; i < 64; ++i)
    if ((components >> i) & 1) end = std::max(end, offset[i] + size[i]);
  return end;
}

uint32_t XsaveLayout::compacted_offset(uint64_t xcomp_bv, unsigned i) const {
  uint32_t at = FpuState::kMinSize;
  for (unsigned j = 2; j <= i; ++j) {
    if (!((xcomp_bv >> j) & 1)) continue;
    if (align64[j]) at = (at + 63) & ~63u;
    if (j == i) break;
    at += size[j];
  }
  return at;
}

uint32_t XsaveLayout::compacted_size(uint64_t xcomp_bv) const {
  uint32_t end = FpuState::kMinSize;
  for (unsigned i = 2; i < 63; ++i)
    if ((xcomp_bv >> i) & 1) end = compacted_offset(xcomp_bv, i) + size[i];
  return end;
}

const XsaveLayout& XsaveLayout::host() {
  static const XsaveLayout layout = [] {
    XsaveLayout l;
    unsigned a, b, c, d;
    if (__get_cpuid_count(0xd, 0, &a, &b, &c, &d)) l.xcr0_supported = a | uint64_t{d} << 32;
    if (__get_cpuid_count(0xd, 1, &a, &b, &c, &d)) l.xgetbv1 = a & 4, l.xsavec = a & 2;
    for (unsigned i = 2; i < 63; ++i)
      if ((l.xcr0_supported >> i) & 1 && __get_cpuid_count(0xd, i, &a, &b, &c, &d)) {
        l.size[i] = a;
        l.offset[i] = b;
        l.align64[i] = c & 2;
      }
    // The mask fxsave reports (SDM vol. 1 11.6.6); 0 from old CPUs means 0xffbf.
    alignas(16) uint8_t image[512] = {};
    asm volatile("fxsave64 %0" : "=m"(image));
    uint32_t mask;
    std::memcpy(&mask, image + FpuState::kMxcsrMask, 4);
    l.mxcsr_mask = mask ? mask : 0xffbf;
    return l;
  }();
  return layout;
}

Result<FpuState> FpuState::create(std::vector<uint8_t> area, const XsaveLayout& layout) {
  if (area.size() < kMinSize) return make_error(EINVAL, "XSAVE area of {} bytes, shorter than {}", area.size(), kMinSize);
  return FpuState(std::move(area), layout);
}

uint64_t FpuState::get(size_t offset, unsigned width) const {
  uint64_t v = 0;
  std::memcpy(&v, area_.data() + offset, width);
  return v;
}

void FpuState::set(size_t offset, uint64_t value, unsigned width) { std::memcpy(area_.data() + offset, &value, width); }

bool FpuState::x87_exception_pending() const {
  if (!(xstate_bv() & xfeature::kX87)) return false;  // initial: FSW 0
  return fsw() & ~fcw() & 0x3f;
}

FpuCpu fpu_cpu(const CpuState& cpu, uint64_t xcr0) {
  FpuCpu c;
  c.cr0 = cpu.sregs.cr0;
  c.cr4 = cpu.sregs.cr4;
  c.xcr0 = xcr0;
  c.cpl = cpl(cpu.regs, cpu.sregs);
  c.bits64 = (cpu.sregs.efer & kEferLma) && cpu.sregs.cs.l;
  c.rip = cpu.regs.rip;
  return c;
}

AssistResult<void> ldmxcsr(FpuState& s, const FpuCpu& c, LinearMemory& mem, uint64_t linear, bool vex) {
  TRY(check_sse(c, "ldmxcsr", vex));
  uint32_t v = TRY(mem.read_le<uint32_t>(linear));
  if (v & ~mxcsr_mask(s)) return fault(Vector::GP, 0, "ldmxcsr {:#x}: reserved bits (mask {:#x})", v, mxcsr_mask(s));
  s.set(FpuState::kMxcsr, v, 4);
  s.set(FpuState::kXstateBv, s.xstate_bv() | xfeature::kSse, 8);
  return {};
}

AssistResult<void> stmxcsr(const FpuState& s, const FpuCpu& c, LinearMemory& mem, uint64_t linear, bool vex) {
  TRY(check_sse(c, "stmxcsr", vex));
  TRY(mem.stage(linear, s.mxcsr(), 4));
  TRY(mem.commit());
  return {};
}

AssistResult<void> fxsave(const FpuState& s, const FpuCpu& c, LinearMemory& mem, uint64_t linear, bool rex_w) {
  // SDM vol. 2 FXSAVE: #NM for CR0.TS or CR0.EM, then #GP(0) for a misaligned operand.
  if (c.cr0 & (kCr0Ts | kCr0Em)) return fault(Vector::NM, {}, "fxsave with CR0.TS or CR0.EM set");
  if (linear & 15) return fault(Vector::GP, 0, "fxsave at {:#x}: not 16-byte aligned", linear);
  std::vector<uint8_t> a = effective(s);
  uint8_t image[FpuState::kXmm0];
  std::memcpy(image, a.data(), sizeof image);
  narrow_pointers(image, rex_w);
  // Bytes 416..511 are reserved or for software (vol. 2 table 3-53): not written.
  TRY(mem.stage(linear, std::span<const uint8_t>(image, kX87HeadEnd)));
  if (c.cr4 & kCr4Osfxsr) {
    uint8_t mx[8];
    std::memcpy(mx, a.data() + FpuState::kMxcsr, 4);
    uint32_t mask = mxcsr_mask(s);
    std::memcpy(mx + 4, &mask, 4);
    TRY(mem.stage(linear + FpuState::kMxcsr, mx));
  }
  TRY(mem.stage(linear + kSt0, std::span<const uint8_t>(image + kSt0, kX87End - kSt0)));
  if (c.cr4 & kCr4Osfxsr)
    TRY(mem.stage(linear + FpuState::kXmm0, std::span<const uint8_t>(a.data() + FpuState::kXmm0, 16 * xmm_count(c))));
  TRY(mem.commit());
  return {};
}

AssistResult<void> fxrstor(FpuState& s, const FpuCpu& c, LinearMemory& mem, uint64_t linear, bool rex_w) {
  if (c.cr0 & (kCr0Ts | kCr0Em)) return fault(Vector::NM, {}, "fxrstor with CR0.TS or CR0.EM set");
  if (linear & 15) return fault(Vector::GP, 0, "fxrstor at {:#x}: not 16-byte aligned", linear);
  uint8_t image[FpuState::kLegacySize];
  TRY(mem.read(linear, image));
  uint32_t mxcsr;
  std::memcpy(&mxcsr, image + FpuState::kMxcsr, 4);
  bool sse = c.cr4 & kCr4Osfxsr;
  if (sse && (mxcsr & ~mxcsr_mask(s)))
    return fault(Vector::GP, 0, "fxrstor: MXCSR {:#x} sets reserved bits (mask {:#x})", mxcsr, mxcsr_mask(s));
  FpuState next = s;
  load_x87(next, image, rex_w);
  uint64_t bv = next.xstate_bv() | xfeature::kX87;
  if (sse) {
    next.set(FpuState::kMxcsr, mxcsr, 4);
    std::memcpy(next.bytes().data() + FpuState::kXmm0, image + FpuState::kXmm0, 16 * xmm_count(c));
    bv |= xfeature::kSse;
  }
  next.set(FpuState::kXstateBv, bv, 8);
  s = std::move(next);
  return {};
}

AssistResult<uint64_t> xgetbv(const FpuState& s, const FpuCpu& c, uint32_t ecx) {
  if (!(c.cr4 & kCr4Osxsave)) return fault(Vector::UD, {}, "xgetbv with CR4.OSXSAVE clear");
  if (ecx == 0) return c.xcr0;
  // XINUSE, as far as KVM's area tells it; the SSE bit also stands for MXCSR != 1F80H (vol. 1 13.6).
  if (ecx == 1 && s.layout().xgetbv1) {
    uint64_t inuse = s.xstate_bv();
    if (s.mxcsr() != kMxcsrInit) inuse |= xfeature::kSse;
    return inuse & c.xcr0;
  }
  return fault(Vector::GP, 0, "xgetbv of XCR{}", ecx);
}

AssistResult<uint64_t> xsetbv(const FpuState& s, const FpuCpu& c, uint32_t ecx, uint64_t v) {
  // SDM vol. 2 XSETBV: #UD without CR4.OSXSAVE; #GP(0) at CPL > 0, for another XCR, or for an
  // XCR0 that the CPU does not support or that breaks the rules of vol. 1 13.3.
  if (!(c.cr4 & kCr4Osxsave)) return fault(Vector::UD, {}, "xsetbv with CR4.OSXSAVE clear");
  if (c.cpl != 0) return fault(Vector::GP, 0, "xsetbv at CPL {}", c.cpl);
  if (ecx != 0) return fault(Vector::GP, 0, "xsetbv of XCR{}", ecx);
  using namespace xfeature;
  auto bad = [&](const char* why) { return fault(Vector::GP, 0, "xsetbv XCR0 {:#x}: {}", v, why); };
  if (v & ~s.layout().xcr0_supported) return bad("unsupported bits");
  if (!(v & kX87)) return bad("x87 clear");
  if ((v & kAvx) && !(v & kSse)) return bad("AVX without SSE");
  if (!(v & kBndregs) != !(v & kBndcsr)) return bad("BNDREGS and BNDCSR differ");
  if ((v & kAvx512) && ((v & kAvx512) != kAvx512 || !(v & kAvx))) return bad("AVX-512 partly or without AVX");
  if (!(v & kTileCfg) != !(v & kTileData)) return bad("TILECFG and TILEDATA differ");
  return v;
}

AssistResult<void> xsave(const FpuState& s, const FpuCpu& c, LinearMemory& mem, uint64_t linear, uint64_t edx_eax,
                         bool rex_w) {
  TRY(check_xsave(c, "xsave"));
  if (linear & 63) return fault(Vector::GP, 0, "xsave at {:#x}: not 64-byte aligned", linear);
  uint64_t rfbm = c.xcr0 & edx_eax;
  const XsaveLayout& l = s.layout();
  if (l.area_size(rfbm) > s.bytes().size())
    return make_error(EOPNOTSUPP, "xsave of components {:#x}: beyond the {}-byte area KVM gave", rfbm, s.bytes().size());
  std::vector<uint8_t> a = effective(s);
  // The header's XSTATE_BV is read, then rewritten for the saved components (vol. 1 13.7).
  uint64_t old_bv = TRY(mem.read_le<uint64_t>(linear + FpuState::kXstateBv));
  if (rfbm & xfeature::kX87) {
    uint8_t image[FpuState::kXmm0];
    std::memcpy(image, a.data(), sizeof image);
    narrow_pointers(image, rex_w);
    TRY(mem.stage(linear, std::span<const uint8_t>(image, kX87HeadEnd)));
    TRY(mem.stage(linear + kSt0, std::span<const uint8_t>(image + kSt0, kX87End - kSt0)));
  }
  if (rfbm & (xfeature::kSse | xfeature::kAvx)) {
    TRY(mem.stage(linear + FpuState::kMxcsr, s.mxcsr(), 4));
    TRY(mem.stage(linear + FpuState::kMxcsrMask, mxcsr_mask(s), 4));
  }
  if (rfbm & xfeature::kSse)
    TRY(mem.stage(linear + FpuState::kXmm0, std::span<const uint8_t>(a.data() + FpuState::kXmm0, 16 * xmm_count(c))));
  for (unsigned i = 2; i < 64; ++i)
    if ((rfbm >> i) & 1)
      TRY(mem.stage(linear + l.offset[i], std::span<const uint8_t>(a.data() + l.offset[i], l.size[i])));
  TRY(mem.stage(linear + FpuState::kXstateBv, (old_bv & ~rfbm) | (s.xstate_bv() & rfbm), 8));
  TRY(mem.commit());
  return {};
}

AssistResult<void> xrstor(FpuState& s, const FpuCpu& c, LinearMemory& mem, uint64_t linear, uint64_t edx_eax,
                          bool rex_w) {
  TRY(check_xsave(c, "xrstor"));
  if (linear & 63) return fault(Vector::GP, 0, "xrstor at {:#x}: not 64-byte aligned", linear);
  uint64_t rfbm = c.xcr0 & edx_eax;
  const XsaveLayout& l = s.layout();
  if (l.area_size(rfbm) > s.bytes().size())
    return make_error(EOPNOTSUPP, "xrstor of components {:#x}: beyond the {}-byte area KVM gave", rfbm, s.bytes().size());
  uint8_t header[FpuState::kHeaderSize];
  TRY(mem.read(linear + FpuState::kXstateBv, header));
  uint64_t bv, comp;
  std::memcpy(&bv, header, 8);
  std::memcpy(&comp, header + 8, 8);
  bool compacted = comp >> 63;
  // SDM vol. 1 13.8.1: the standard form wants header bytes 23:8 zero, the compacted form bytes
  // 63:16; XCOMP_BV[63] needs XSAVEC, and its other bits must lie in XCR0 (XRSTOR, unlike XRSTORS,
  // knows no supervisor components); XSTATE_BV must lie in XCR0, and in XCOMP_BV when compacted.
  size_t reserved_from = compacted ? 16 : 8, reserved_to = compacted ? FpuState::kHeaderSize : 24;
  if (std::any_of(header + reserved_from, header + reserved_to, [](uint8_t b) { return b != 0; }))
    return fault(Vector::GP, 0, "xrstor: reserved header bytes not zero");
  uint64_t comp_bits = comp & ~(1ull << 63);
  if (compacted && !l.xsavec) return fault(Vector::GP, 0, "xrstor of a compacted image without XSAVEC");
  if (compacted && (comp_bits & ~c.xcr0))
    return fault(Vector::GP, 0, "xrstor: XCOMP_BV {:#x} beyond XCR0 {:#x}", comp, c.xcr0);
  if (bv & ~c.xcr0) return fault(Vector::GP, 0, "xrstor: XSTATE_BV {:#x} beyond XCR0 {:#x}", bv, c.xcr0);
  if (compacted && (bv & ~comp_bits))
    return fault(Vector::GP, 0, "xrstor: XSTATE_BV {:#x} beyond XCOMP_BV {:#x}", bv, comp);
  // Where component i lies in memory, in either form.
  auto at = [&](unsigned i) { return compacted ? l.compacted_offset(comp_bits, i) : l.offset[i]; };
  // Read what the CPU reads: the legacy region and header, and each requested component's bytes.
  size_t end = FpuState::kMinSize;
  for (unsigned i = 2; i < 63; ++i)
    if ((rfbm >> i) & 1 && (!compacted || (comp_bits >> i) & 1)) end = std::max<size_t>(end, at(i) + l.size[i]);
  std::vector<uint8_t> image(end);
  TRY(mem.read(linear, image));
  FpuState next = s;
  // MXCSR: the standard form loads it whenever SSE or AVX is requested, whatever XSTATE_BV says;
  // the compacted form only with SSE state itself, and sets it to 1F80H when SSE is initialised
  // (13.8.1, 13.8.2; AssistFpuDifferential.XrstorCompacted checks this against the host).
  bool load_mxcsr = compacted ? (rfbm & bv & xfeature::kSse) != 0 : (rfbm & (xfeature::kSse | xfeature::kAvx)) != 0;
  if (load_mxcsr) {
    uint32_t mxcsr;
    std::memcpy(&mxcsr, image.data() + FpuState::kMxcsr, 4);
    if (mxcsr & ~mxcsr_mask(s))
      return fault(Vector::GP, 0, "xrstor: MXCSR {:#x} sets reserved bits (mask {:#x})", mxcsr, mxcsr_mask(s));
    next.set(FpuState::kMxcsr, mxcsr, 4);
  } else if (compacted && (rfbm & xfeature::kSse)) {
    next.set(FpuState::kMxcsr, 0x1f80, 4);
  }
  if (rfbm & xfeature::kX87) {
    if (bv & xfeature::kX87) load_x87(next, image.data(), rex_w);
    else init_x87(next);
  }
  if (rfbm & xfeature::kSse) {
    uint8_t* xmm = next.bytes().data() + FpuState::kXmm0;
    if (bv & xfeature::kSse) std::memcpy(xmm, image.data() + FpuState::kXmm0, 16 * xmm_count(c));
    else std::memset(xmm, 0, 16 * xmm_count(c));
  }
  for (unsigned i = 2; i < 64; ++i) {
    if (!((rfbm >> i) & 1)) continue;
    uint8_t* dst = next.bytes().data() + l.offset[i];
    if ((bv >> i) & 1) std::memcpy(dst, image.data() + at(i), l.size[i]);
    else std::memset(dst, 0, l.size[i]);
  }
  next.set(FpuState::kXstateBv, (s.xstate_bv() & ~rfbm) | (bv & rfbm), 8);
  s = std::move(next);
  return {};
}

AssistResult<void> fwait(const FpuState& s, const FpuCpu& c) {
  if ((c.cr0 & kCr0Mp) && (c.cr0 & kCr0Ts)) return fault(Vector::NM, {}, "fwait with CR0.MP and CR0.TS set");
  if (!s.x87_exception_pending()) return {};
  // With CR0.NE clear the CPU signals FERR# to an external interrupt controller (vol. 1 D.1),
  // which evmm's machines do not wire up.
  if (!(c.cr0 & kCr0Ne))
    return make_error(EOPNOTSUPP, "fwait with an x87 exception pending (FSW {:#x}) and CR0.NE clear: FERR# is not modelled",
                      s.fsw());
  return fault(Vector::MF, {}, "fwait with an x87 exception pending (FSW {:#x})", s.fsw());
}

}  // namespace evmm::x86
