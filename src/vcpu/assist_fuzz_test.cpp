// Random instruction bytes against random CPU states and guest tables: complete_instruction must
// never crash (the lead runs this under ASan/UBSan), must fail with one of its documented codes,
// and must leave registers and guest memory untouched whenever it fails.
#include <gtest/gtest.h>

#include <algorithm>
#include <array>
#include <cstring>
#include <random>
#include <vector>

#include "vcpu/assist.h"
#include "testing/assist_test_env.h"

namespace evmm {
namespace {

using namespace assist_testing;
using Bytes = std::vector<uint8_t>;

constexpr uint64_t kMemBytes = 64 * 1024;
constexpr int kIterations = 20000;
// Where fill_world leaves iret frames (EIP, CS, EFLAGS, ESP, SS) of mostly plausible selectors, and the
// DPL 3 data segment an outer return needs, in a GDT slot World leaves free.
constexpr uint64_t kFrames = 0xa000, kFrameBytes = 20, kFrameCount = 32;
constexpr uint16_t kSelUserData = 0x48;

// Bytes that steer the decoder somewhere: prefixes, REX, the opcodes it knows, ModRM forms.
constexpr uint8_t kInteresting[] = {0x66, 0x67, 0xf2, 0xf3, 0xf0, 0x2e, 0x3e, 0x26, 0x64, 0x65, 0x36, 0x40,
                                    0x41, 0x44, 0x48, 0x49, 0x4d, 0x4f, 0xcc, 0xcd, 0x9b, 0x0f, 0x01, 0xca,
                                    0xcb, 0xb8, 0xbc, 0xbd, 0xc7, 0xf8, 0xf9, 0xc3, 0x38, 0x03, 0x80,
                                    0xf1, 0xae, 0x3f, 0x37, 0x82, 0x0f, 0x07, 0xcf};

const Bytes kTemplates[] = {
    {0xcc}, {0xcd, 0x80}, {0xcd, 0x03}, {0x0f, 0x01, 0xca}, {0x0f, 0x01, 0xcb}, {0x9b},
    {0xf3, 0x0f, 0xc7, 0xf8}, {0xf3, 0x41, 0x0f, 0xc7, 0xf9}, {0xf3, 0x48, 0x0f, 0xb8, 0xc3},
    {0x66, 0xf3, 0x0f, 0xbd, 0xfe}, {0xf3, 0x4d, 0x0f, 0xbc, 0xcb}, {0xf1}, {0xcf}, {0x66, 0xcf},
    {0xf3, 0x0f, 0xb8, 0x07}, {0x67, 0xf3, 0x48, 0x0f, 0xbd, 0x44, 0x9f, 0x10},  // popcnt/lzcnt from memory
    {0x0f, 0xc7, 0x0f}, {0xf0, 0x0f, 0xc7, 0x4f, 0x08}, {0x48, 0x0f, 0xc7, 0x0f}, {0xf0, 0x48, 0x0f, 0xc7, 0x0f},
    {0x0f, 0xae, 0x3f}, {0x66, 0x0f, 0xae, 0x3f}, {0x66, 0x0f, 0xae, 0x37}, {0x66, 0x0f, 0x38, 0x82, 0x07},
    // The FPU family, memory operands through %rdi.
    {0x0f, 0xae, 0x17}, {0x0f, 0xae, 0x1f}, {0x0f, 0xae, 0x07}, {0x48, 0x0f, 0xae, 0x0f}, {0x0f, 0xae, 0x27},
    {0x0f, 0xae, 0x37}, {0x48, 0x0f, 0xae, 0x2f}, {0x0f, 0x01, 0xd0}, {0x0f, 0x01, 0xd1}, {0xd9, 0xe8},
    {0xdb, 0xf1},
    // lsl and lar on a selector in a register or in memory.
    {0x0f, 0x03, 0xc1}, {0x0f, 0x02, 0xc1}, {0x48, 0x0f, 0x03, 0x07}, {0x66, 0x0f, 0x02, 0x0f},
};

// Replayed on the host (x86_simd.h), for the fuzzer that turns them on: movdqu load and store,
// pxor, vmovdqu, vpxor, vmovdqu64 zmm, a masked vmovdqu8 store, rorx, movdqa, pshufb.
const Bytes kSimdTemplates[] = {
    {0xf3, 0x0f, 0x6f, 0x0f}, {0xf3, 0x0f, 0x7f, 0x17}, {0x66, 0x0f, 0xef, 0xca}, {0xc5, 0xfa, 0x6f, 0x07},
    {0xc5, 0xf1, 0xef, 0xc2}, {0x62, 0xf1, 0xfe, 0x48, 0x6f, 0x0f}, {0x62, 0xf1, 0x7f, 0x4a, 0x7f, 0x0f},
    {0xc4, 0xe3, 0xfb, 0xf0, 0x07, 0x07}, {0x66, 0x0f, 0x6f, 0x07}, {0x66, 0x0f, 0x38, 0x00, 0x07},
};

// Where the memory-operand templates point rdi and rbx: a zeroed window (invpcid wants a
// descriptor with bits 63:12 clear).
constexpr uint64_t kOperandWindow = 0x9000, kOperandBytes = 0x1000;

// Where fill_world leaves a valid fxrstor/xrstor image with MXCSR 1F80H at the front.
constexpr uint64_t kFpuImage = 0xa000;

class Fuzzer {
 public:
  // simd: draw from the replayed SIMD templates too.
  explicit Fuzzer(uint64_t seed, bool simd = false) : rng_(seed), simd_(simd) {}

  uint64_t next() { return rng_(); }
  bool chance(unsigned one_in) { return rng_() % one_in == 0; }

  // Random bytes, then a GDT, an IDT of mostly plausible gates, and a TSS of stack pointers.
  void fill_world(FakeEnv& env) {
    Bytes all(kMemBytes);
    for (auto& b : all) b = static_cast<uint8_t>(rng_());
    std::fill(all.begin() + kOperandWindow, all.begin() + kOperandWindow + kOperandBytes, 0);
    env.poke(0, all);
    write_gdt(env);
    const uint16_t selectors[] = {kSelCode64, kSelCode64Current, kSelData, kSelCode32, kSelCode64Unaccessed,
                                  kSelCode64Dpl3, kSelCode64NotPresent, kSelCode32Based, 0, 0x0c, 0xfff8};
    const uint8_t attrs[] = {0x8e, 0x8f, 0xee, 0xef, 0x0e, 0x86, 0x87, 0x85, 0x8c, 0x9e};
    for (int v = 0; v < 256; ++v) {
      if (chance(8)) continue;  // leave random bytes
      uint64_t offset = chance(4) ? rng_() : 0xffffffff81000000 + (rng_() % 0x10000);
      uint16_t sel = selectors[rng_() % std::size(selectors)];
      uint8_t attr = attrs[rng_() % std::size(attrs)];
      env.poke_le(kIdtBase + v * 16ull, (offset & 0xffff) | uint64_t{sel} << 16 | (rng_() % 8) << 32 |
                                            uint64_t{attr} << 40 | ((offset >> 16) & 0xffff) << 48, 8);
      env.poke_le(kIdtBase + v * 16ull + 8, chance(8) ? rng_() : offset >> 32, 8);
    }
    for (int i = 0; i < 7; ++i) env.poke_le(kTssBase + 36 + 8 * i, chance(4) ? rng_() : rng_() % kMemBytes, 8);
    env.poke_le(0x10 * 4, 0xc0001234, 4);  // a real-mode IVT entry
    env.poke_le(kGdtBase + kSelUserData, 0x00cff2000000ffff, 8);
    const uint16_t frame_selectors[] = {kSelCode32, kSelCode32, kSelCode32, kSelCode32 | 3, kSelCode64Dpl3 | 3, kSelCode32Based, kSelData,
                                        kSelUserData | 3, kSelUserData | 2, 0, 0x0c, 0xfff8};
    for (uint64_t i = 0; i < kFrameCount; ++i) {
      uint64_t at = kFrames + i * kFrameBytes;
      auto selector = [&] { return frame_selectors[rng_() % std::size(frame_selectors)]; };
      env.poke_le(at, chance(4) ? rng_() : rng_() % 0x3000, 4);
      env.poke_le(at + 4, selector(), 4);
      env.poke_le(at + 8, (rng_() & (chance(8) ? 0x3f7fd5 : 0x3d7fd5)) | 2, 4);  // VM set now and then
      env.poke_le(at + 12, rng_(), 4);
      env.poke_le(at + 16, selector(), 4);
    }
    env.poke(kFpuImage, Bytes(576, 0));
    env.poke_le(kFpuImage, 0x037f, 2);
    env.poke_le(kFpuImage + 24, 0x1f80, 4);
    env.poke_le(kFpuImage + 512, 3, 8);
  }

  CpuState state() {
    CpuState c;
    switch (rng_() % 5) {
      case 0: c = long_mode_state(); break;
      case 1: c = protected_mode_state(); break;
      case 2: c = real_mode_state(); break;
      case 3:
        c = long_mode_state();
        c.sregs.cs = flat_segment(kSelCode32, 0xb, false, true);  // compatibility mode
        break;
      default: {
        // Anything at all, byte for byte.
        auto* raw = reinterpret_cast<uint8_t*>(&c);
        for (size_t i = 0; i < sizeof c; ++i) raw[i] = static_cast<uint8_t>(rng_());
        return c;
      }
    }
    for (__u64* r : {&c.regs.rax, &c.regs.rbx, &c.regs.rcx, &c.regs.rdx, &c.regs.rsi, &c.regs.rdi, &c.regs.rbp,
                     &c.regs.r8, &c.regs.r9, &c.regs.r10, &c.regs.r11, &c.regs.r12, &c.regs.r13, &c.regs.r14,
                     &c.regs.r15})
      *r = rng_();
    if (chance(2)) c.regs.rdi = kOperandWindow + (rng_() % kOperandBytes & ~uint64_t{chance(2) ? 15u : 0u});
    if (chance(2)) c.regs.rbx = rng_() % 8;
    if (chance(2)) c.regs.rax = rng_() % 5;
    switch (rng_() % 5) {
      case 0: c.regs.rsp = rng_(); break;
      case 1: c.regs.rsp = 0xffffc90000000000 + rng_() % kMemBytes; break;
      case 2: c.regs.rsp = kFrames + kFrameBytes * (rng_() % kFrameCount); break;
      default: c.regs.rsp = rng_() % (kMemBytes + 64); break;
    }
    if (chance(2)) c.regs.rflags = (rng_() & 0x3f7fd5) | 2;
    if (chance(2)) c.sregs.cr4 |= 1 << 9 | 1 << 18;  // OSFXSR, OSXSAVE
    if (chance(2)) c.regs.rdi = chance(2) ? kFpuImage : (rng_() % kMemBytes) & ~63ull;
    if (chance(3)) c.regs.rcx = 0, c.regs.rax = chance(2) ? 3 : 7, c.regs.rdx = 0;
    if (chance(4)) c.regs.rip = rng_();
    if (chance(4)) c.sregs.idt.limit = static_cast<uint16_t>(rng_());
    if (chance(8)) c.sregs.idt.base = chance(2) ? rng_() : rng_() % kMemBytes;
    if (chance(8)) c.sregs.gdt.limit = static_cast<uint16_t>(rng_());
    if (chance(8)) c.sregs.gdt.base = rng_() % kMemBytes;
    if (chance(8)) c.sregs.ldt.present = 1, c.sregs.ldt.base = rng_() % kMemBytes, c.sregs.ldt.limit = rng_() % 256;
    if (chance(8)) c.sregs.tr.type = rng_() % 16, c.sregs.tr.limit = static_cast<uint32_t>(rng_() % 256);
    if (chance(8)) c.sregs.tr.base = rng_();
    if (chance(8)) c.sregs.ss.dpl = rng_() % 4;
    if (chance(8)) c.sregs.cs.selector = static_cast<uint16_t>(rng_());
    if (chance(8)) c.sregs.ss.db ^= 1;
    if (chance(8)) c.sregs.ss.type = rng_() % 16, c.sregs.ss.limit = static_cast<uint32_t>(rng_());
    if (chance(8)) c.sregs.ss.base = rng_() % (kMemBytes * 2);
    if (chance(16)) c.sregs.cs.l ^= 1;
    if (chance(16)) c.sregs.cs.db ^= 1;
    if (chance(16)) c.sregs.cr0 ^= 1;
    if (chance(16)) c.sregs.efer ^= 1 << 10;
    if (chance(16)) c.sregs.cr4 ^= 1 << 12;
    return c;
  }

  Bytes insn() {
    Bytes b;
    if (chance(3)) {
      // A known encoding, with a prefix added, a byte changed, or cut short.
      b = simd_ && chance(2) ? kSimdTemplates[rng_() % std::size(kSimdTemplates)]
                             : kTemplates[rng_() % std::size(kTemplates)];
      if (chance(3)) b.insert(b.begin(), kInteresting[rng_() % std::size(kInteresting)]);
      if (chance(4)) b[rng_() % b.size()] = static_cast<uint8_t>(rng_());
      if (chance(4)) b.resize(rng_() % (b.size() + 1));
      if (chance(2)) b.push_back(static_cast<uint8_t>(rng_()));  // the next instruction's bytes
      return b;
    }
    size_t len = rng_() % 16;
    for (size_t i = 0; i < len; ++i)
      b.push_back(chance(2) ? kInteresting[rng_() % std::size(kInteresting)] : static_cast<uint8_t>(rng_()));
    return b;
  }

 private:
  std::mt19937_64 rng_;
  bool simd_;
};

// True when the two images differ only in the accessed and dirty flags (bits 5 and 6) of
// 8-byte-aligned words: what a page walk through tables in that memory sets.
bool only_accessed_flags_differ(const Bytes& a, const Bytes& b) {
  for (size_t i = 0; i < a.size(); ++i) {
    uint8_t x = a[i] ^ b[i];
    if (x && (i % 8 != 0 || (x & ~0x60) != 0)) return false;
  }
  return true;
}

// Returns how often each kind succeeded, so the caller can check the fuzzer reached them.
std::array<int, static_cast<size_t>(AssistKind::Count)> run_fuzz(Fuzzer& f, FakeEnv& env) {
  std::array<int, static_cast<size_t>(AssistKind::Count)> ran{};
  f.fill_world(env);
  env.msrs[0xC0000103] = f.next();
  // Guest memory as it is now, copied out through the checked accessor.
  auto snapshot = [&env] {
    Bytes b(kMemBytes);
    EXPECT_TRUE(env.memory().read(GuestAddress(0), b));
    return b;
  };
  Bytes reference = snapshot();

  for (int i = 0; i < kIterations; ++i) {
    CpuState cpu = f.state();
    CpuState before = cpu;
    Bytes insn = f.insn();
    auto r = complete_instruction(insn, cpu, env);
    Bytes now = snapshot();
    bool memory_same = now == reference;
    if (!r) {
      int code = r.error().code();
      EXPECT_TRUE(code == EINVAL || code == EOPNOTSUPP || code == EFAULT) << r.error().message();
      EXPECT_FALSE(r.error().message().empty());
      EXPECT_EQ(std::memcmp(&cpu, &before, sizeof cpu), 0) << "registers changed by a failure: " << format_bytes(insn);
      EXPECT_TRUE(memory_same) << "memory changed by a failure: " << format_bytes(insn) << " "
                               << r.error().message();
      if (!memory_same) reference = std::move(now);
      if (::testing::Test::HasFailure()) return ran;
      continue;
    }
    EXPECT_LT(*r, AssistKind::Count);
    if (*r >= AssistKind::Count) return ran;
    ++ran[static_cast<size_t>(*r)];
    // iret loads RF from the stack; every other instruction clears it on completion.
    if (*r != AssistKind::Iret) {
      EXPECT_EQ(cpu.regs.rflags & (1 << 16), 0u) << "RF survives " << format_bytes(insn);
    }
    if (*r == AssistKind::Int3 || *r == AssistKind::IntN || *r == AssistKind::Int1 || *r == AssistKind::Iret ||
        *r == AssistKind::Cmpxchg8b || *r == AssistKind::Cmpxchg16b || *r == AssistKind::Stmxcsr ||
        *r == AssistKind::Fxsave || *r == AssistKind::Xsave || *r == AssistKind::Xsaveopt || *r == AssistKind::Sse ||
        *r == AssistKind::Avx || *r == AssistKind::Avx512) {
      reference = std::move(now);
    } else {
      // The page walk of a memory operand may set accessed flags where a random CR3 puts the tables
      // in this memory; nothing else may change.
      EXPECT_TRUE(memory_same || only_accessed_flags_differ(now, reference)) << format_bytes(insn);
      reference = std::move(now);
      EXPECT_EQ(std::memcmp(&cpu.sregs, &before.sregs, sizeof cpu.sregs), 0) << format_bytes(insn);
    }
    if (::testing::Test::HasFailure()) return ran;
  }
  return ran;
}

TEST(AssistFuzz, IdentityTranslation) {
  Fuzzer f(0x5eed0001);
  FakeEnv env(kMemBytes);
  auto ran = run_fuzz(f, env);
  for (int k = 0; k < static_cast<int>(AssistKind::Count); ++k) {
    auto kind = static_cast<AssistKind>(k);
    if (kind >= AssistKind::Sse) continue;  // AssistFuzz.ReplayedSimd
    EXPECT_GT(ran[k], 0) << "the fuzzer never completed " << to_string(kind);
  }
}

// The replayed kinds with the vector state the host has (XCR0 with AVX and AVX-512 if it can).
TEST(AssistFuzz, ReplayedSimd) {
  Fuzzer f(0x5eed0003, true);
  FakeEnv env(kMemBytes);
  uint32_t lo, hi;
  asm("xgetbv" : "=a"(lo), "=d"(hi) : "c"(0));
  env.xcr0 = env.xcr0_supported = (lo | uint64_t{hi} << 32) & 0xe7;
  auto ran = run_fuzz(f, env);
  for (auto kind : {AssistKind::Sse, AssistKind::Avx, AssistKind::Avx512, AssistKind::Bmi}) {
    // A host without these never runs them (the decoder refuses what the host lacks).
    if ((kind == AssistKind::Avx && !__builtin_cpu_supports("avx")) ||
        (kind == AssistKind::Avx512 && !__builtin_cpu_supports("avx512f")) ||
        (kind == AssistKind::Bmi && !__builtin_cpu_supports("bmi2")))
      continue;
    EXPECT_GT(ran[static_cast<size_t>(kind)], 0) << "the fuzzer never completed " << to_string(kind);
  }
}

TEST(AssistFuzz, PageMapWithHoles) {
  Fuzzer f(0x5eed0002);
  FakeEnv env(kMemBytes);
  // Low pages mostly identity, the stack region scattered, a few pages missing.
  for (uint64_t p = 0; p < kMemBytes / 4096; ++p) {
    if (p % 5 != 4) env.map(p * 4096, p * 4096);
    if (p % 3 != 2) env.map(0xffffc90000000000 + p * 4096, (f.next() % (kMemBytes / 4096)) * 4096);
  }
  auto ran = run_fuzz(f, env);
  EXPECT_GT(ran[static_cast<size_t>(AssistKind::Int3)] + ran[static_cast<size_t>(AssistKind::IntN)], 0);
}

}  // namespace
}  // namespace evmm
