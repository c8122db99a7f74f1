// The replayed SIMD instructions' rules (x86_simd.h) as complete_instruction applies them: the
// faults before the replay (#UD, #NM, alignment #GP, #PF) leave the state and memory as they were;
// what is not modelled or not allowed is refused with EOPNOTSUPP; segment overrides apply.
// Results are checked against the host CPU in x86_simd_differential_test.cpp.
#include <gtest/gtest.h>

#include <cpuid.h>

#include "testing/assist_test_env.h"
#include "vcpu/x86_fpu.h"

namespace evmm {
namespace {

using namespace x86;
using namespace assist_testing;

constexpr uint64_t kBuf = 0x10000, kCr4Simd = kCr4Osfxsr | kCr4Osxmmexcpt | kCr4Osxsave;

bool host_avx512() {
  unsigned a, b, c, d;
  return __get_cpuid_count(7, 0, &a, &b, &c, &d) && (b >> 16 & 1) && (b >> 30 & 1);
}

struct SimdWorld : World {
  SimdWorld() {
    long_mode();
    cpu.sregs.cr4 |= kCr4Simd;
    env.xcr0 = env.xcr0_supported = 7;
    cpu.regs.rdi = kBuf;
    for (int i = 0; i < 64; ++i) env.poke(kBuf + i, {static_cast<uint8_t>(i + 1)});
  }
  // Runs insn, expecting fault v with nothing changed.
  void expect_fault(std::initializer_list<uint8_t> insn, Vector v, std::optional<uint32_t> code = std::nullopt) {
    auto before = env.snapshot();
    auto fpu = env.fpu;
    CpuState was = cpu;
    auto r = run(insn);
    ASSERT_FALSE(r);
    ASSERT_TRUE(r.error().fault()) << r.error().message();
    EXPECT_EQ(r.error().fault()->vector, v) << r.error().message();
    if (code) {
      EXPECT_EQ(r.error().fault()->error_code, code) << r.error().message();
    }
    EXPECT_EQ(env.snapshot(), before);
    EXPECT_EQ(env.fpu, fpu);
    EXPECT_EQ(cpu.regs.rip, was.regs.rip);
  }
  void expect_refused(std::initializer_list<uint8_t> insn) {
    auto r = run(insn);
    ASSERT_FALSE(r);
    EXPECT_EQ(r.error().code(), EOPNOTSUPP) << r.error().message();
    EXPECT_FALSE(r.error().fault());
  }
  std::vector<uint8_t> xmm(unsigned n) { return {env.fpu.begin() + 160 + 16 * n, env.fpu.begin() + 176 + 16 * n}; }
};

TEST(AssistSimd, MovdquLoadsAndCountsAsSse) {
  SimdWorld w;
  auto r = w.run({0xf3, 0x0f, 0x6f, 0x0f});  // movdqu (%rdi), %xmm1
  ASSERT_TRUE(r) << r.error().message();
  EXPECT_EQ(*r, AssistKind::Sse);
  EXPECT_STREQ(to_string(*r), "sse");
  std::vector<uint8_t> want;
  for (int i = 0; i < 16; ++i) want.push_back(static_cast<uint8_t>(i + 1));
  EXPECT_EQ(w.xmm(1), want);
  EXPECT_EQ(w.cpu.regs.rip, 0xffffffff81001004);
  EXPECT_EQ(w.env.fpu_writes, 1);
}

TEST(AssistSimd, KindsByEncoding) {
  SimdWorld w;
  EXPECT_EQ(*w.run({0xc5, 0xfa, 0x6f, 0x07}), AssistKind::Avx);  // vmovdqu (%rdi), %xmm0: the kernel's
  w.env.fpu_writes = 0;
  auto r = w.run({0xc4, 0xe3, 0xfb, 0xf0, 0x07, 0x07});  // rorx $7, (%rdi), %rax
  ASSERT_TRUE(r) << r.error().message();
  EXPECT_EQ(*r, AssistKind::Bmi);
  EXPECT_EQ(w.env.fpu_writes, 0);  // general registers only
  EXPECT_STREQ(to_string(AssistKind::Avx512), "avx512");
}

TEST(AssistSimd, SegmentOverrideUsesTheSegmentBase) {
  SimdWorld w;
  w.cpu.sregs.gs.base = kBuf;
  w.cpu.regs.rdi = 0x10;
  ASSERT_TRUE(w.run({0x65, 0xf3, 0x0f, 0x6f, 0x0f}));  // movdqu %gs:(%rdi), %xmm1
  EXPECT_EQ(w.xmm(1)[0], 0x11);
  // A REX before a legacy prefix is ignored (the fuzz invariant found the host copy keeping the
  // GS override behind it, which would have read the host's own GS segment).
  w.env.fpu.assign(4096, 0);
  w.env.fpu[24] = 0x80, w.env.fpu[25] = 0x1f;
  ASSERT_TRUE(w.run({0x48, 0x65, 0xf3, 0x0f, 0x6f, 0x0f}));
  EXPECT_EQ(w.xmm(1)[0], 0x11);
}

TEST(AssistSimd, RepeatedPrefixesReplayWithinFifteenBytes) {
  // 14 bytes: nine 66s and two REX before paddd (%rdi), %xmm0. The host copy keeps each prefix
  // once; keeping all nine with the disp32 would have made a 17-byte instruction (the fuzzer).
  SimdWorld w;
  w.env.fpu.assign(4096, 0);
  w.env.fpu[24] = 0x80, w.env.fpu[25] = 0x1f;
  auto r = w.run({0x66, 0x66, 0x66, 0x66, 0x66, 0x66, 0x66, 0x40, 0x66, 0x66, 0x40, 0x0f, 0xfe, 0x07});
  ASSERT_TRUE(r) << r.error().message();
  std::vector<uint8_t> want;
  for (int i = 0; i < 16; ++i) want.push_back(static_cast<uint8_t>(i + 1));
  EXPECT_EQ(w.xmm(0), want);
  EXPECT_EQ(w.cpu.regs.rip, 0xffffffff8100100e);
}

TEST(AssistSimd, RipRelativeOperand) {
  SimdWorld w;
  w.cpu.regs.rip = kBuf - 0x100;
  // movdqu 0xf8(%rip), %xmm2: the next instruction is at kBuf - 0x100 + 8.
  ASSERT_TRUE(w.run({0xf3, 0x0f, 0x6f, 0x15, 0xf8, 0x00, 0x00, 0x00}));
  EXPECT_EQ(w.xmm(2)[0], 0x01);
}

TEST(AssistSimd, AlignmentFaults) {
  SimdWorld w;
  w.cpu.regs.rdi = kBuf + 8;
  w.expect_fault({0x66, 0x0f, 0x6f, 0x0f}, Vector::GP, 0);  // movdqa
  w.expect_fault({0x66, 0x0f, 0xef, 0x0f}, Vector::GP, 0);  // pxor m128, legacy: aligned
  w.cpu.regs.rdi = kBuf + 16;
  w.expect_fault({0xc5, 0xfd, 0x6f, 0x07}, Vector::GP, 0);  // vmovdqa ymm: 32 bytes
  w.cpu.regs.rdi = kBuf + 8;
  EXPECT_TRUE(w.run({0xc5, 0xf1, 0xef, 0x07}));  // vpxor (%rdi), %xmm1, %xmm0: VEX, no alignment
  EXPECT_TRUE(w.run({0xf3, 0x0f, 0x6f, 0x0f}));  // movdqu
}

TEST(AssistSimd, UdAndNmRules) {
  SimdWorld w;
  w.cpu.sregs.cr0 |= kCr0Ts;
  w.expect_fault({0xf3, 0x0f, 0x6f, 0x0f}, Vector::NM);
  w.expect_fault({0xc5, 0xfa, 0x6f, 0x07}, Vector::NM);
  w.expect_fault({0xc5, 0xf8, 0x77}, Vector::NM);  // vzeroupper names no register but writes them
  EXPECT_TRUE(w.run({0xc4, 0xe3, 0xfb, 0xf0, 0x07, 0x07}));  // rorx: no vector state, no #NM
  w.cpu.sregs.cr0 |= kCr0Em;
  w.expect_fault({0xf3, 0x0f, 0x6f, 0x0f}, Vector::UD);  // #UD before #NM
  w.cpu.sregs.cr0 &= ~(kCr0Em | kCr0Ts);
  w.cpu.sregs.cr4 &= ~kCr4Osfxsr;
  w.expect_fault({0xf3, 0x0f, 0x6f, 0x0f}, Vector::UD);
  w.cpu.sregs.cr4 |= kCr4Osfxsr;
  w.env.xcr0 = 3;
  w.expect_fault({0xc5, 0xfa, 0x6f, 0x07}, Vector::UD);  // XCR0 without AVX
  w.env.xcr0 = 7;
  w.cpu.sregs.cr4 &= ~kCr4Osxsave;
  w.expect_fault({0xc5, 0xfa, 0x6f, 0x07}, Vector::UD);
  w.cpu.sregs.cr4 |= kCr4Osxsave;
  if (host_avx512()) w.expect_fault({0x62, 0xf1, 0xfe, 0x48, 0x6f, 0x0f}, Vector::UD);  // vmovdqu64 zmm, XCR0 = 7
  // #UD comes before a non-canonical operand's #GP.
  w.cpu.regs.rdi = 0x8000000000000000;
  w.env.xcr0 = 3;
  w.expect_fault({0xc5, 0xfa, 0x6f, 0x07}, Vector::UD);
  w.env.xcr0 = 7;
  w.expect_fault({0xc5, 0xfa, 0x6f, 0x07}, Vector::GP, 0);
}

TEST(AssistSimd, PageFaultsWriteNothing) {
  SimdWorld w;
  w.env.map_identity(0, 17);
  w.env.map(kBuf + 0x1000, kBuf + 0x1000, kPteP);  // read-only
  w.cpu.regs.rdi = kBuf + 0x2000;                   // not mapped
  w.expect_fault({0xf3, 0x0f, 0x6f, 0x0f}, Vector::PF, 0);
  w.expect_fault({0xf3, 0x0f, 0x7f, 0x17}, Vector::PF, 2);  // movdqu store
  w.cpu.regs.rdi = kBuf + 0x1000;
  w.expect_fault({0xc5, 0xfe, 0x7f, 0x17}, Vector::PF, 3);  // vmovdqu ymm store to a read-only page
  w.cpu.regs.rdi = kBuf + 0xff8;  // crosses into the read-only page
  w.expect_fault({0xf3, 0x0f, 0x7f, 0x17}, Vector::PF, 3);
  EXPECT_TRUE(w.run({0xf3, 0x0f, 0x6f, 0x0f}));  // a load across it is fine
}

TEST(AssistSimd, UnmaskedSimdExceptionIsRefused) {
  SimdWorld w;
  w.env.fpu[24] = 0x00;  // MXCSR 0x1f00: invalid operation unmasked
  w.env.poke_le(kBuf, 0x7f800001, 4);  // a signalling NaN: addps raises invalid
  auto fpu = w.env.fpu;
  w.expect_refused({0x0f, 0x58, 0x0f});  // addps (%rdi), %xmm1
  EXPECT_EQ(w.env.fpu, fpu);
  w.env.poke_le(kBuf, 0x3f800000, 4);  // 1.0f: nothing raised, and the result is the CPU's
  ASSERT_TRUE(w.run({0x0f, 0x58, 0x0f}));
  EXPECT_EQ(w.xmm(1)[3], 0x3f);
  w.env.fpu[24] = 0x80;  // all masked: the flag is raised and kept
  w.env.poke_le(kBuf, 0x7f800001, 4);
  ASSERT_TRUE(w.run({0x0f, 0x58, 0x0f}));
  EXPECT_EQ(w.env.fpu[24] & 0x3f, 0x01);
}

TEST(AssistSimd, MaskedAccessToAnUnmappedPageIsRefused) {
  if (!host_avx512()) GTEST_SKIP() << "no AVX-512 here";
  SimdWorld w;
  w.env.xcr0 = w.env.xcr0_supported = 0xe7;
  w.env.map_identity(0, 17);
  w.cpu.regs.rdi = kBuf + 0xfe0;  // the second half is on the unmapped page after
  w.env.map(kBuf + 0x1000, kBuf + 0x1000, 0);
  w.expect_refused({0x62, 0xf1, 0x7f, 0xc9, 0x6f, 0x07});  // vmovdqu8 (%rdi), %zmm0{%k1}{z}
  w.expect_refused({0x62, 0xf1, 0x7f, 0x4a, 0x7f, 0x0f});  // vmovdqu8 %zmm1, (%rdi){%k2}
}

TEST(AssistSimd, RefusesWhatItCannotReplay) {
  SimdWorld w;
  w.expect_refused({0x66, 0x0f, 0xf7, 0xca});              // maskmovdqu: implicit [rdi]
  w.expect_refused({0xf3, 0x0f, 0xd6, 0xc1});              // movq2dq: MMX
  w.expect_refused({0x0f, 0x38, 0x00, 0xc1});              // pshufb mm
  w.expect_refused({0x0f, 0x18, 0x0f});                    // prefetcht0
  w.expect_refused({0x0f, 0x77});                          // emms
  w.expect_refused({0x66, 0x48, 0x0f, 0x7e, 0xc4});        // movq %xmm0, %rsp
  w.expect_refused({0xc4, 0xe2, 0x75, 0x90, 0x04, 0x87});  // vpgatherdd: vector index
  w.expect_refused({0xdd, 0x0f});                          // fisttp (%rdi): x87 memory
  World compat;
  compat.protected_mode();
  compat.cpu.sregs.cr4 |= kCr4Simd;
  auto r = compat.run({0xf3, 0x0f, 0x6f, 0x0f});
  ASSERT_FALSE(r);
  EXPECT_EQ(r.error().code(), EOPNOTSUPP);  // 64-bit mode only
}

}  // namespace
}  // namespace evmm
