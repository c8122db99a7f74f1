// The assists against the host CPU: each instruction that can run in a host process runs natively
// here (inline asm) and through complete_instruction on the same random register and memory state,
// and the architectural results must agree: registers, the flags the SDM defines, memory, faults.
// The seed is printed on failure; set EVMM_DIFF_SEED to rerun one.
#include <gtest/gtest.h>

#include <cpuid.h>

#include <cstdlib>
#include <cstring>
#include <random>
#include <vector>

#include "testing/assist_test_env.h"
#include "vcpu/assist.h"
#include "vcpu/x86_arch.h"

namespace evmm {
namespace {

using namespace assist_testing;
namespace fl = x86::rflags;

constexpr int kRounds = 3000;
constexpr uint64_t kGuestBuf = 0x10000;  // where the operand lives in the fake guest
constexpr uint64_t kArith = fl::kCF | fl::kPF | fl::kAF | fl::kZF | fl::kSF | fl::kOF;

struct Regs {
  uint64_t rax, rbx, rcx, rdx, flags;
};

bool cpu_has(unsigned leaf, unsigned sub, int reg, unsigned bit) {
  unsigned r[4] = {};
  if (!__get_cpuid_count(leaf, sub, &r[0], &r[1], &r[2], &r[3])) return false;
  return (r[reg] >> bit) & 1;
}
enum { EAX, EBX, ECX, EDX };

// Each runs one instruction on [mem] with the registers in r, flags in and out through pushf/popf
// (below the red zone).
#define EVMM_NATIVE(name, insn)                                                                       \
  void name(Regs& r, void* mem) {                                                                    \
    asm volatile("sub $128, %%rsp\n\tpush %[f]\n\tpopfq\n\t" insn "\n\tpushfq\n\tpop %[f]\n\tadd $128, %%rsp" \
                 : [f] "+r"(r.flags), "+a"(r.rax), "+b"(r.rbx), "+c"(r.rcx), "+d"(r.rdx)                \
                 : "D"(mem)                                                                          \
                 : "memory", "cc");                                                                  \
  }
EVMM_NATIVE(native_cmpxchg8b, "lock cmpxchg8b (%%rdi)")
EVMM_NATIVE(native_cmpxchg16b, "lock cmpxchg16b (%%rdi)")
EVMM_NATIVE(native_popcnt64, "popcnt (%%rdi), %%rax")
EVMM_NATIVE(native_popcnt32, "popcntl (%%rdi), %%eax")
EVMM_NATIVE(native_popcnt16, "popcntw (%%rdi), %%ax")
EVMM_NATIVE(native_lzcnt64, "lzcnt (%%rdi), %%rax")
EVMM_NATIVE(native_lzcnt32, "lzcntl (%%rdi), %%eax")
EVMM_NATIVE(native_lzcnt16, "lzcntw (%%rdi), %%ax")
EVMM_NATIVE(native_tzcnt64, "tzcnt (%%rdi), %%rax")
EVMM_NATIVE(native_tzcnt32, "tzcntl (%%rdi), %%eax")
EVMM_NATIVE(native_tzcnt16, "tzcntw (%%rdi), %%ax")
EVMM_NATIVE(native_clflush, "clflush (%%rdi)")
EVMM_NATIVE(native_clflushopt, "clflushopt (%%rdi)")
EVMM_NATIVE(native_clwb, "clwb (%%rdi)")
#undef EVMM_NATIVE

struct Case {
  const char* name;
  void (*native)(Regs&, void*);
  std::vector<uint8_t> bytes;  // the same instruction, with rdi as the base
  uint64_t defined_flags;      // compared; the others are undefined
  unsigned align;              // operand alignment the native form needs
  bool supported;
};

uint64_t seed() {
  if (const char* s = std::getenv("EVMM_DIFF_SEED")) return std::strtoull(s, nullptr, 0);
  return std::random_device{}() | uint64_t{std::random_device{}()} << 32;
}

void run_case(const Case& c) {
  if (!c.supported) GTEST_SKIP() << "the host CPU lacks " << c.name;
  uint64_t s = seed();
  SCOPED_TRACE(fmt::format("{} seed {:#x} (EVMM_DIFF_SEED)", c.name, s));
  std::mt19937_64 rng(s);
  alignas(64) uint8_t host[64];
  World w;
  for (int round = 0; round < kRounds; ++round) {
    unsigned off = static_cast<unsigned>(rng() % 32) & ~(c.align - 1);
    uint8_t init[64];
    for (auto& b : init) b = static_cast<uint8_t>(rng());
    // Sparse values now and then, so that zero and full counts and matches come up.
    if (rng() % 4 == 0) std::memset(init + off, 0, 16);
    if (rng() % 8 == 0) init[off + rng() % 16] = static_cast<uint8_t>(1u << (rng() % 8));
    Regs in{rng(), rng(), rng(), rng(), (rng() & kArith) | 2};
    if (rng() % 2 == 0) {  // make cmpxchg's compare succeed
      std::memcpy(&in.rax, init + off, 8);
      uint64_t hi;
      std::memcpy(&hi, init + off + 8, 8);
      in.rdx = c.align == 16 ? hi : in.rax >> 32;
    }

    std::memcpy(host, init, sizeof host);
    Regs native = in;
    c.native(native, host + off);

    w.long_mode();
    w.env.poke(kGuestBuf, std::vector<uint8_t>(init, init + sizeof init));
    w.cpu.regs.rax = in.rax, w.cpu.regs.rbx = in.rbx, w.cpu.regs.rcx = in.rcx, w.cpu.regs.rdx = in.rdx;
    w.cpu.regs.rdi = kGuestBuf + off;
    w.cpu.regs.rflags = in.flags;
    auto r = complete_instruction(c.bytes, w.cpu, w.env);
    ASSERT_TRUE(r) << "round " << round << ": " << r.error().message();

    EXPECT_EQ(w.cpu.regs.rax, native.rax) << "round " << round;
    EXPECT_EQ(w.cpu.regs.rbx, native.rbx) << "round " << round;
    EXPECT_EQ(w.cpu.regs.rcx, native.rcx) << "round " << round;
    EXPECT_EQ(w.cpu.regs.rdx, native.rdx) << "round " << round;
    EXPECT_EQ(w.cpu.regs.rflags & c.defined_flags, native.flags & c.defined_flags) << "round " << round;
    std::vector<uint8_t> guest(sizeof host);
    ASSERT_TRUE(w.env.memory().read(GuestAddress(kGuestBuf), guest));
    EXPECT_EQ(std::memcmp(guest.data(), host, sizeof host), 0) << "round " << round;
    if (::testing::Test::HasFailure()) return;
  }
}

const bool kCx16 = cpu_has(1, 0, ECX, 13), kPopcnt = cpu_has(1, 0, ECX, 23);
const bool kLzcnt = cpu_has(0x80000001, 0, ECX, 5), kBmi1 = cpu_has(7, 0, EBX, 3);
const bool kClflushopt = cpu_has(7, 0, EBX, 23), kClwb = cpu_has(7, 0, EBX, 24);
// cmpxchg leaves every flag but ZF unchanged: all six are compared.
const uint64_t kCountFlags = fl::kZF | fl::kCF;

TEST(AssistDifferential, Cmpxchg8b) { run_case({"cmpxchg8b", native_cmpxchg8b, {0xf0, 0x0f, 0xc7, 0x0f}, kArith, 1, true}); }
TEST(AssistDifferential, Cmpxchg16b) {
  run_case({"cmpxchg16b", native_cmpxchg16b, {0xf0, 0x48, 0x0f, 0xc7, 0x0f}, kArith, 16, kCx16});
}
TEST(AssistDifferential, Popcnt) {
  run_case({"popcnt64", native_popcnt64, {0xf3, 0x48, 0x0f, 0xb8, 0x07}, kArith, 1, kPopcnt});
  run_case({"popcnt32", native_popcnt32, {0xf3, 0x0f, 0xb8, 0x07}, kArith, 1, kPopcnt});
  run_case({"popcnt16", native_popcnt16, {0x66, 0xf3, 0x0f, 0xb8, 0x07}, kArith, 1, kPopcnt});
}
TEST(AssistDifferential, Lzcnt) {
  run_case({"lzcnt64", native_lzcnt64, {0xf3, 0x48, 0x0f, 0xbd, 0x07}, kCountFlags, 1, kLzcnt});
  run_case({"lzcnt32", native_lzcnt32, {0xf3, 0x0f, 0xbd, 0x07}, kCountFlags, 1, kLzcnt});
  run_case({"lzcnt16", native_lzcnt16, {0x66, 0xf3, 0x0f, 0xbd, 0x07}, kCountFlags, 1, kLzcnt});
}
TEST(AssistDifferential, Tzcnt) {
  run_case({"tzcnt64", native_tzcnt64, {0xf3, 0x48, 0x0f, 0xbc, 0x07}, kCountFlags, 1, kBmi1});
  run_case({"tzcnt32", native_tzcnt32, {0xf3, 0x0f, 0xbc, 0x07}, kCountFlags, 1, kBmi1});
  run_case({"tzcnt16", native_tzcnt16, {0x66, 0xf3, 0x0f, 0xbc, 0x07}, kCountFlags, 1, kBmi1});
}
TEST(AssistDifferential, CacheLineFlushes) {
  run_case({"clflush", native_clflush, {0x0f, 0xae, 0x3f}, kArith, 1, true});
  run_case({"clflushopt", native_clflushopt, {0x66, 0x0f, 0xae, 0x3f}, kArith, 1, kClflushopt});
  run_case({"clwb", native_clwb, {0x66, 0x0f, 0xae, 0x37}, kArith, 1, kClwb});
}

// A misaligned cmpxchg16b raises #GP(0) natively (SIGSEGV in a process): the assist must raise
// it for every misalignment, as SDM vol. 2 CMPXCHG16B says, and touch nothing.
TEST(AssistDifferential, Cmpxchg16bMisalignedIsGp) {
  World w;
  w.long_mode();
  for (unsigned off = 1; off < 16; ++off) {
    w.cpu.regs.rdi = kGuestBuf + off;
    auto before = w.env.snapshot();
    auto r = w.run({0xf0, 0x48, 0x0f, 0xc7, 0x0f});
    ASSERT_FALSE(r);
    ASSERT_TRUE(r.error().fault());
    EXPECT_EQ(r.error().fault()->vector, x86::Vector::GP);
    EXPECT_EQ(r.error().fault()->error_code, 0u);
    EXPECT_EQ(w.env.snapshot(), before);
  }
}

}  // namespace
}  // namespace evmm
