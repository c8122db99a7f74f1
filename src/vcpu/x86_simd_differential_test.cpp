// Differential test of the replayed SSE/AVX/AVX-512/BMI instructions (x86_simd.h): each case runs
// natively in this process, on random vector state, general registers, flags and memory, and
// through complete_instruction on the same state in a fake guest; the XSAVE images (canonical:
// components not in use read as zeros), the general registers, the arithmetic flags and memory
// must agree. The cases are assembled here, each between two labels, so the bytes handed to the
// assist are the bytes the native run executes; memory operands are based on RDI.
// The native side does not share code with x86_simd.cpp: its own stub loads the state with
// xrstor64, the registers, calls the case and saves everything back.
#include <gtest/gtest.h>

#include <cpuid.h>

#include <cstring>
#include <random>
#include <vector>

#include "testing/assist_test_env.h"
#include "vcpu/x86_arch.h"
#include "vcpu/x86_fpu.h"

// evmm_simd_native(st): st[0..7] rax rbx rcx rdx rsi rdi r8 r9, st[8] rflags, st[9] code,
// st[10] xsave mask, st[11] state in/out, st[12] host scratch area.
asm(R"(
  .text
  .p2align 4
  .globl evmm_simd_native
  .type evmm_simd_native, @function
evmm_simd_native:
  push %rbx
  push %rbp
  mov %rdi, %rbp
  mov 80(%rbp), %eax
  mov 84(%rbp), %edx
  mov 96(%rbp), %rcx
  xsave64 (%rcx)
  mov 88(%rbp), %rcx
  xrstor64 (%rcx)
  pushq 64(%rbp)
  popfq
  mov 0(%rbp), %rax
  mov 8(%rbp), %rbx
  mov 16(%rbp), %rcx
  mov 24(%rbp), %rdx
  mov 32(%rbp), %rsi
  mov 40(%rbp), %rdi
  mov 48(%rbp), %r8
  mov 56(%rbp), %r9
  call *72(%rbp)
  mov %rax, 0(%rbp)
  mov %rbx, 8(%rbp)
  mov %rcx, 16(%rbp)
  mov %rdx, 24(%rbp)
  mov %rsi, 32(%rbp)
  mov %rdi, 40(%rbp)
  mov %r8, 48(%rbp)
  mov %r9, 56(%rbp)
  pushfq
  popq 64(%rbp)
  mov 80(%rbp), %eax
  mov 84(%rbp), %edx
  mov 88(%rbp), %rcx
  xsave64 (%rcx)
  mov 96(%rbp), %rcx
  xrstor64 (%rcx)
  pop %rbp
  pop %rbx
  ret
  .size evmm_simd_native, .-evmm_simd_native
)");
extern "C" void evmm_simd_native(uint64_t* st);

// A case: NAME's instruction between evmm_case_NAME and evmm_case_NAME_end, then ret.
#define EVMM_CASE(name, insn)                                                                     \
  asm(".pushsection .text\n\t.globl evmm_case_" #name "\nevmm_case_" #name ":\n\t" insn "\n"       \
      "evmm_case_" #name "_end:\n\tret\n\t.popsection");                                        \
  extern "C" const uint8_t evmm_case_##name[], evmm_case_##name##_end[];
#define EVMM_REF(name) evmm_case_##name, evmm_case_##name##_end

// SSE (legacy encoding): moves, integer and FP ALU, shuffles, crypto, flags, GPR operands.
EVMM_CASE(movdqu_load, "movdqu (%rdi), %xmm1")
EVMM_CASE(movdqu_store, "movdqu %xmm2, (%rdi)")
EVMM_CASE(movdqa_load, "movdqa (%rdi), %xmm3")
EVMM_CASE(movaps_store, "movaps %xmm4, (%rdi)")
EVMM_CASE(movups_load, "movups 8(%rdi), %xmm9")
EVMM_CASE(movq_load, "movq (%rdi), %xmm0")
EVMM_CASE(movq_store, "movq %xmm1, (%rdi)")
EVMM_CASE(movd_load, "movd (%rdi), %xmm5")
EVMM_CASE(movq_gpr, "movq %xmm3, %rax")
EVMM_CASE(movd_from_gpr, "movd %ecx, %xmm12")
EVMM_CASE(pxor_mem, "pxor (%rdi), %xmm1")
EVMM_CASE(pxor_reg, "pxor %xmm2, %xmm1")
EVMM_CASE(paddd_reg, "paddd %xmm14, %xmm15")
EVMM_CASE(pshufb_mem, "pshufb (%rdi), %xmm0")
EVMM_CASE(pshufd_imm, "pshufd $0x1b, (%rdi), %xmm4")
EVMM_CASE(psrld_imm, "psrld $7, %xmm3")
EVMM_CASE(palignr, "palignr $5, %xmm2, %xmm6")
EVMM_CASE(punpcklqdq, "punpcklqdq (%rdi), %xmm7")
EVMM_CASE(pclmulqdq, "pclmulqdq $0x11, (%rdi), %xmm1")
EVMM_CASE(aesenc, "aesenc (%rdi), %xmm2")
EVMM_CASE(aesenclast, "aesenclast %xmm3, %xmm2")
EVMM_CASE(ptest, "ptest (%rdi), %xmm1")
EVMM_CASE(pmovmskb, "pmovmskb %xmm1, %eax")
EVMM_CASE(pextrd_mem, "pextrd $1, %xmm1, (%rdi)")
EVMM_CASE(pinsrq, "pinsrq $1, (%rdi), %xmm0")
EVMM_CASE(crc32q, "crc32q (%rdi), %rax")
EVMM_CASE(addps, "addps (%rdi), %xmm1")
EVMM_CASE(mulsd, "mulsd %xmm2, %xmm1")
EVMM_CASE(sha256rnds2, "sha256rnds2 (%rdi), %xmm1")
EVMM_CASE(movdqu_gs, "movdqu %gs:(%rdi), %xmm1")
EVMM_CASE(movdqu_sib, "movdqu 0x10(%rdi,%rcx,1), %xmm8")
// AVX, AVX2 (VEX).
EVMM_CASE(vmovdqu_xmm_load, "vmovdqu (%rdi), %xmm0")
EVMM_CASE(vmovdqu_ymm_load, "vmovdqu (%rdi), %ymm1")
EVMM_CASE(vmovdqu_ymm_store, "vmovdqu %ymm2, (%rdi)")
EVMM_CASE(vmovdqa_ymm_load, "vmovdqa (%rdi), %ymm3")
EVMM_CASE(vpxor_ymm, "vpxor (%rdi), %ymm2, %ymm1")
EVMM_CASE(vpxor_xmm_reg, "vpxor %xmm3, %xmm2, %xmm1")
EVMM_CASE(vpshufb_ymm, "vpshufb (%rdi), %ymm1, %ymm0")
EVMM_CASE(vpaddd_ymm, "vpaddd %ymm5, %ymm6, %ymm13")
EVMM_CASE(vpbroadcastd, "vpbroadcastd (%rdi), %ymm0")
EVMM_CASE(vpermq, "vpermq $0x1b, (%rdi), %ymm1")
EVMM_CASE(vperm2i128, "vperm2i128 $0x21, %ymm2, %ymm3, %ymm4")
EVMM_CASE(vzeroupper, "vzeroupper")
EVMM_CASE(vaesenc_ymm, "vaesenc (%rdi), %ymm2, %ymm3")
EVMM_CASE(vmovd_gpr, "vmovd %xmm4, %edx")
EVMM_CASE(vmaskmovps_store, "vmaskmovps %ymm1, %ymm2, (%rdi)")
EVMM_CASE(vpmaskmovd_load, "vpmaskmovd (%rdi), %ymm2, %ymm1")
// AVX-512 (EVEX), with masks, zeroing and broadcast.
EVMM_CASE(vmovdqu64_load, "vmovdqu64 (%rdi), %zmm1")
EVMM_CASE(vmovdqu64_store, "vmovdqu64 %zmm17, (%rdi)")
EVMM_CASE(vmovdqu8_masked_load, "vmovdqu8 (%rdi), %zmm0{%k1}{z}")
EVMM_CASE(vmovdqu8_masked_store, "vmovdqu8 %zmm1, (%rdi){%k2}")
EVMM_CASE(vpaddd_bcst, "vpaddd (%rdi){1to16}, %zmm1, %zmm2")
EVMM_CASE(vpternlogd, "vpternlogd $0x96, (%rdi), %zmm3, %zmm4")
EVMM_CASE(vprold_ymm, "vprold $7, %ymm20, %ymm21")
EVMM_CASE(kmovq, "kmovq %rax, %k3")
EVMM_CASE(kortestw, "kortestw %k1, %k2")
// BMI1, BMI2, ADX (general registers only).
EVMM_CASE(rorx, "rorx $7, (%rdi), %rax")
EVMM_CASE(shlx, "shlx %rcx, (%rdi), %rax")
EVMM_CASE(andn, "andn (%rdi), %rbx, %rax")
EVMM_CASE(mulx, "mulx (%rdi), %rax, %rbx")
EVMM_CASE(adcx, "adcx (%rdi), %rax")
EVMM_CASE(adox, "adox %rbx, %rsi")

namespace evmm {
namespace {

using namespace x86;
using assist_testing::World;

constexpr uint64_t kGuestBuf = 0x10000, kArith = 0x8d5, kCr4Simd = kCr4Osfxsr | kCr4Osxmmexcpt | kCr4Osxsave;
constexpr size_t kArea = 4096, kMem = 256;

uint64_t host_xcr0() {
  uint32_t lo, hi;
  asm volatile("xgetbv" : "=a"(lo), "=d"(hi) : "c"(0));
  return lo | uint64_t{hi} << 32;
}
bool cpu_has(unsigned leaf, unsigned sub, int reg, unsigned bit) {
  unsigned r[4] = {};
  if (!__get_cpuid_count(leaf, sub, &r[0], &r[1], &r[2], &r[3])) return false;
  return (r[reg] >> bit) & 1;
}
const bool kAvx2 = cpu_has(7, 0, 1, 5), kAvx512 = cpu_has(7, 0, 1, 16) && cpu_has(7, 0, 1, 30) && cpu_has(7, 0, 1, 31);
const bool kSha = cpu_has(7, 0, 1, 29), kVaes = cpu_has(7, 0, 2, 9), kBmi2 = cpu_has(7, 0, 1, 8), kAdx = cpu_has(7, 0, 1, 19);

struct Case {
  const char* name;
  const uint8_t* begin;
  const uint8_t* end;
  unsigned align = 1;  // of the operand the native instruction needs
  bool supported = true;
};

class AssistSimdDifferential : public ::testing::Test {
 protected:
  void SetUp() override {
    safe_ = host_xcr0() & (xfeature::kX87 | xfeature::kSse | xfeature::kAvx | xfeature::kAvx512);
    seed_ = std::random_device{}();
    if (const char* s = std::getenv("EVMM_DIFF_SEED")) seed_ = static_cast<unsigned>(std::strtoul(s, nullptr, 0));
    rng_.seed(seed_);
    for (auto*& b : buf_) b = static_cast<uint8_t*>(std::aligned_alloc(64, kArea));
  }
  void TearDown() override {
    for (auto* b : buf_) std::free(b);
  }

  // A random x87/SSE/AVX/AVX-512 state; MXCSR masks every exception (the kernel's setting; an
  // unmasked one is refused, AssistSimd.UnmaskedSimdExceptionIsRefused) with random flags,
  // rounding, FZ and DAZ.
  std::vector<uint8_t> random_state() {
    const XsaveLayout& l = XsaveLayout::host();
    std::vector<uint8_t> g(kArea, 0);
    g[0] = 0x7f, g[1] = 3;
    for (size_t i = FpuState::kXmm0; i < FpuState::kXmm0 + 256; ++i) g[i] = static_cast<uint8_t>(rng_());
    for (unsigned c : {2u, 5u, 6u, 7u})
      if ((safe_ >> c) & 1)
        for (size_t i = l.offset[c]; i < l.offset[c] + l.size[c]; ++i) g[i] = static_cast<uint8_t>(rng_());
    uint64_t bv = (rng_() % 4 ? safe_ : rng_() & safe_) | xfeature::kX87;
    uint32_t mxcsr = bv & xfeature::kSse ? (0x1f80 | (static_cast<uint32_t>(rng_()) & 0xe07f)) & l.mxcsr_mask : 0x1f80;
    std::memcpy(&g[FpuState::kMxcsr], &mxcsr, 4);
    std::memcpy(&g[FpuState::kXstateBv], &bv, 8);
    return g;
  }

  // Components not in use read as their initial values; the fields no instruction here writes
  // (MXCSR_MASK, the reserved bytes, the header past XSTATE_BV) are left out.
  std::vector<uint8_t> canon(std::vector<uint8_t> a) const {
    const XsaveLayout& l = XsaveLayout::host();
    uint64_t bv;
    std::memcpy(&bv, &a[FpuState::kXstateBv], 8);
    if (!(bv & xfeature::kSse)) std::memset(&a[FpuState::kXmm0], 0, 256);
    // x87 registers in their initial configuration may be reported in use or not: the same state.
    static const std::vector<uint8_t> x87_init = [] {
      std::vector<uint8_t> v(160, 0);
      v[0] = 0x7f, v[1] = 3;
      return v;
    }();
    if (std::equal(a.begin(), a.begin() + 24, x87_init.begin()) && std::all_of(a.begin() + 32, a.begin() + 160, [](uint8_t b) { return b == 0; }))
      a[FpuState::kXstateBv] &= static_cast<uint8_t>(~xfeature::kX87);
    for (unsigned c : {2u, 5u, 6u, 7u})
      if ((safe_ >> c) & 1 && !((bv >> c) & 1)) std::memset(&a[l.offset[c]], 0, l.size[c]);
    std::memset(&a[28], 0, 4);
    std::memset(&a[416], 0, 96);
    // With every component's contents explicit, XSTATE_BV says only what the CPU's init optimisation
    // chose, which is the implementation's (SDM vol. 1 13.6): an AMD EPYC was seen to mark AVX in use
    // after a legacy movdqa load that left the upper halves zero, where the replay did not.
    std::memset(&a[512], 0, 64);
    size_t end = l.area_size(safe_);
    std::fill(a.begin() + static_cast<long>(end), a.end(), uint8_t{0});
    return a;
  }

  void run(const Case& c, int rounds = 200) {
    if (!c.supported) GTEST_SKIP() << "the host CPU lacks " << c.name;
    std::vector<uint8_t> bytes(c.begin, c.end);
    SCOPED_TRACE(fmt::format("{} ({}) seed {} (EVMM_DIFF_SEED)", c.name, format_bytes(bytes), seed_));
    World w;  // one fake guest per case: its page tables take a while to build
    for (int round = 0; round < rounds; ++round) {
      auto state = random_state();
      std::vector<uint8_t> mem(kMem);
      for (auto& b : mem) b = static_cast<uint8_t>(rng_());
      size_t off = (rng_() % 64) & ~size_t{c.align - 1};
      uint64_t gpr[8];
      for (auto& r : gpr) r = rng_();
      gpr[2] = rng_() % 32;  // rcx: an index and a shift count
      uint64_t flags = (rng_() & kArith) | 2;

      // Natively.
      uint8_t *st = buf_[0], *host = buf_[1], *m = buf_[2];
      std::memcpy(st, state.data(), kArea);
      std::memset(host, 0, kArea);
      std::memcpy(m, mem.data(), kMem);
      uint64_t n[13];
      std::memcpy(n, gpr, sizeof gpr);
      n[5] = reinterpret_cast<uint64_t>(m + off);
      n[8] = flags, n[9] = reinterpret_cast<uint64_t>(c.begin), n[10] = safe_;
      n[11] = reinterpret_cast<uint64_t>(st), n[12] = reinterpret_cast<uint64_t>(host);
      evmm_simd_native(n);

      // Through the assist.
      w.long_mode();
      w.cpu.sregs.cr4 |= kCr4Simd;
      w.env.xcr0 = w.env.xcr0_supported = safe_;
      w.env.fpu = state;
      w.env.poke(kGuestBuf, mem);
      kvm_regs& r = w.cpu.regs;
      r.rax = gpr[0], r.rbx = gpr[1], r.rcx = gpr[2], r.rdx = gpr[3], r.rsi = gpr[4], r.r8 = gpr[6], r.r9 = gpr[7];
      r.rdi = kGuestBuf + off;
      r.rflags = flags | 0x200;
      uint64_t rip = r.rip;
      auto done = complete_instruction(bytes, w.cpu, w.env);
      ASSERT_TRUE(done) << "round " << round << ": " << done.error().message();
      EXPECT_EQ(r.rip, rip + bytes.size());

      std::string at = fmt::format("round {} off {}", round, off);
      auto a = canon(w.env.fpu), b = canon(std::vector<uint8_t>(st, st + kArea));
      for (size_t i = 0; i < kArea; ++i)
        if (a[i] != b[i]) {
          ADD_FAILURE() << "state byte " << i << ": assist " << int(a[i]) << " native " << int(b[i]) << " " << at;
          return;
        }
      EXPECT_EQ(r.rax, n[0]) << at;
      EXPECT_EQ(r.rbx, n[1]) << at;
      EXPECT_EQ(r.rcx, n[2]) << at;
      EXPECT_EQ(r.rdx, n[3]) << at;
      EXPECT_EQ(r.rsi, n[4]) << at;
      EXPECT_EQ(r.rdi - kGuestBuf, n[5] - reinterpret_cast<uint64_t>(m)) << at;
      EXPECT_EQ(r.r8, n[6]) << at;
      EXPECT_EQ(r.r9, n[7]) << at;
      EXPECT_EQ(r.rflags & kArith, n[8] & kArith) << at;
      std::vector<uint8_t> after(kMem);
      ASSERT_TRUE(w.env.memory().read(GuestAddress(kGuestBuf), after));
      EXPECT_EQ(0, std::memcmp(after.data(), m, kMem)) << at;
      if (HasFailure()) return;
    }
  }

  uint64_t safe_ = 0;
  unsigned seed_ = 0;
  std::mt19937_64 rng_;
  uint8_t* buf_[3] = {};
};

TEST_F(AssistSimdDifferential, SseMoves) {
  for (const Case& c : {Case{"movdqu load", EVMM_REF(movdqu_load)}, Case{"movdqu store", EVMM_REF(movdqu_store)},
                        Case{"movdqa load", EVMM_REF(movdqa_load), 16}, Case{"movaps store", EVMM_REF(movaps_store), 16},
                        Case{"movups load", EVMM_REF(movups_load)}, Case{"movq load", EVMM_REF(movq_load)},
                        Case{"movq store", EVMM_REF(movq_store)}, Case{"movd load", EVMM_REF(movd_load)},
                        Case{"movq to gpr", EVMM_REF(movq_gpr)}, Case{"movd from gpr", EVMM_REF(movd_from_gpr)},
                        Case{"movdqu sib", EVMM_REF(movdqu_sib)}})
    run(c);
}

TEST_F(AssistSimdDifferential, SseAlu) {
  for (const Case& c :
       {Case{"pxor mem", EVMM_REF(pxor_mem), 16}, Case{"pxor reg", EVMM_REF(pxor_reg)}, Case{"paddd", EVMM_REF(paddd_reg)},
        Case{"pshufb", EVMM_REF(pshufb_mem), 16}, Case{"pshufd", EVMM_REF(pshufd_imm), 16},
        Case{"psrld", EVMM_REF(psrld_imm)}, Case{"palignr", EVMM_REF(palignr)},
        Case{"punpcklqdq", EVMM_REF(punpcklqdq), 16}, Case{"ptest", EVMM_REF(ptest), 16},
        Case{"pmovmskb", EVMM_REF(pmovmskb)}, Case{"pextrd", EVMM_REF(pextrd_mem)}, Case{"pinsrq", EVMM_REF(pinsrq)},
        Case{"crc32q", EVMM_REF(crc32q)}, Case{"addps", EVMM_REF(addps), 16}, Case{"mulsd", EVMM_REF(mulsd)}})
    run(c);
}

TEST_F(AssistSimdDifferential, SseCrypto) {
  for (const Case& c : {Case{"pclmulqdq", EVMM_REF(pclmulqdq), 16}, Case{"aesenc", EVMM_REF(aesenc), 16},
                        Case{"aesenclast", EVMM_REF(aesenclast)}, Case{"sha256rnds2", EVMM_REF(sha256rnds2), 16, kSha}})
    run(c);
}

TEST_F(AssistSimdDifferential, Avx) {
  for (const Case& c :
       {Case{"vmovdqu xmm load", EVMM_REF(vmovdqu_xmm_load)}, Case{"vmovdqu ymm load", EVMM_REF(vmovdqu_ymm_load)},
        Case{"vmovdqu ymm store", EVMM_REF(vmovdqu_ymm_store)}, Case{"vmovdqa ymm", EVMM_REF(vmovdqa_ymm_load), 32},
        Case{"vpxor ymm", EVMM_REF(vpxor_ymm), 1, kAvx2}, Case{"vpxor xmm", EVMM_REF(vpxor_xmm_reg)},
        Case{"vpshufb ymm", EVMM_REF(vpshufb_ymm), 1, kAvx2}, Case{"vpaddd ymm", EVMM_REF(vpaddd_ymm), 1, kAvx2},
        Case{"vpbroadcastd", EVMM_REF(vpbroadcastd), 1, kAvx2}, Case{"vpermq", EVMM_REF(vpermq), 1, kAvx2},
        Case{"vperm2i128", EVMM_REF(vperm2i128), 1, kAvx2}, Case{"vzeroupper", EVMM_REF(vzeroupper)},
        Case{"vaesenc ymm", EVMM_REF(vaesenc_ymm), 1, kVaes}, Case{"vmovd to gpr", EVMM_REF(vmovd_gpr)},
        Case{"vmaskmovps store", EVMM_REF(vmaskmovps_store)}, Case{"vpmaskmovd load", EVMM_REF(vpmaskmovd_load), 1, kAvx2}})
    run(c);
}

TEST_F(AssistSimdDifferential, Avx512) {
  for (const Case& c : {Case{"vmovdqu64 load", EVMM_REF(vmovdqu64_load), 1, kAvx512},
                        Case{"vmovdqu64 store", EVMM_REF(vmovdqu64_store), 1, kAvx512},
                        Case{"vmovdqu8 masked load", EVMM_REF(vmovdqu8_masked_load), 1, kAvx512},
                        Case{"vmovdqu8 masked store", EVMM_REF(vmovdqu8_masked_store), 1, kAvx512},
                        Case{"vpaddd broadcast", EVMM_REF(vpaddd_bcst), 1, kAvx512},
                        Case{"vpternlogd", EVMM_REF(vpternlogd), 1, kAvx512}, Case{"vprold", EVMM_REF(vprold_ymm), 1, kAvx512},
                        Case{"kmovq", EVMM_REF(kmovq), 1, kAvx512}, Case{"kortestw", EVMM_REF(kortestw), 1, kAvx512}})
    run(c);
}

TEST_F(AssistSimdDifferential, Bmi) {
  for (const Case& c : {Case{"rorx", EVMM_REF(rorx), 1, kBmi2}, Case{"shlx", EVMM_REF(shlx), 1, kBmi2},
                        Case{"andn", EVMM_REF(andn), 1, kBmi2}, Case{"mulx", EVMM_REF(mulx), 1, kBmi2},
                        Case{"adcx", EVMM_REF(adcx), 1, kAdx}, Case{"adox", EVMM_REF(adox), 1, kAdx}})
    run(c);
}

}  // namespace
}  // namespace evmm
