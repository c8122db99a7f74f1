// Decoding and the register-only assists: clac, stac, fwait, rdpid, popcnt, lzcnt, tzcnt.
// Encodings were checked with GNU as/objdump (--64, --32, -M i8086); the assembly is beside each.
#include "vcpu/assist.h"

#include <gtest/gtest.h>

#include <cstring>
#include <set>
#include <string>
#include <vector>

#include "testing/assist_test_env.h"

namespace evmm {
namespace {

using namespace assist_testing;
using Bytes = std::vector<uint8_t>;

constexpr uint64_t kCF = 1 << 0, kPF = 1 << 2, kAF = 1 << 4, kZF = 1 << 6, kSF = 1 << 7,
                   kDF = 1 << 10, kOF = 1 << 11, kRF = 1 << 16, kAC = 1 << 18;
constexpr uint64_t kArith = kCF | kPF | kAF | kZF | kSF | kOF;
constexpr uint32_t kTscAux = 0xC0000103;

bool same_cpu(const CpuState& a, const CpuState& b) { return std::memcmp(&a, &b, sizeof a) == 0; }

// Runs insn and expects success as `kind`, with RIP advanced by the whole encoding.
void expect_ran(World& w, const Bytes& insn, AssistKind kind) {
  uint64_t rip = w.cpu.regs.rip;
  auto r = complete_instruction(insn, w.cpu, w.env);
  ASSERT_TRUE(r) << format_bytes(insn) << ": " << r.error().message();
  EXPECT_EQ(*r, kind);
  EXPECT_EQ(w.cpu.regs.rip, rip + insn.size()) << format_bytes(insn);
}

void expect_refused(World& w, const Bytes& insn, int code, const std::string& text) {
  CpuState before = w.cpu;
  auto r = complete_instruction(insn, w.cpu, w.env);
  ASSERT_FALSE(r) << format_bytes(insn) << " ran as " << to_string(*r);
  EXPECT_EQ(r.error().code(), code) << r.error().message();
  EXPECT_NE(r.error().message().find(text), std::string::npos) << r.error().message();
  EXPECT_TRUE(same_cpu(before, w.cpu)) << format_bytes(insn);
}

TEST(AssistFormat, BytesAndKinds) {
  EXPECT_EQ(format_bytes({}), "");
  EXPECT_EQ(format_bytes(Bytes{0x0f, 0xae, 0xf0}), "0f ae f0");
  EXPECT_EQ(format_bytes(Bytes{0x00, 0xff}), "00 ff");
  EXPECT_STREQ(to_string(AssistKind::Int3), "int3");
  EXPECT_STREQ(to_string(AssistKind::Popcnt), "popcnt");
  std::set<std::string> names;
  for (int k = 0; k < static_cast<int>(AssistKind::Count); ++k) names.insert(to_string(static_cast<AssistKind>(k)));
  EXPECT_EQ(names.size(), static_cast<size_t>(AssistKind::Count));
  EXPECT_EQ(names.count("unknown"), 0u);
}

TEST(AssistFlags, ClacStac) {
  World w;
  w.long_mode();
  w.cpu.regs.rflags = 0x202 | kAC | kRF | kCF;
  CpuState before = w.cpu;
  expect_ran(w, {0x0f, 0x01, 0xca}, AssistKind::Clac);  // clac
  EXPECT_EQ(w.cpu.regs.rflags, 0x202 | kCF);            // RF is cleared on completion too
  expect_ran(w, {0x0f, 0x01, 0xcb}, AssistKind::Stac);  // stac
  EXPECT_EQ(w.cpu.regs.rflags, 0x202 | kCF | kAC);
  expect_ran(w, {0x2e, 0x0f, 0x01, 0xca}, AssistKind::Clac);  // cs clac: a segment prefix is harmless
  EXPECT_EQ(w.cpu.regs.rflags, 0x202 | kCF);
  // Nothing but RIP and RFLAGS moved.
  before.regs.rip = w.cpu.regs.rip;
  before.regs.rflags = w.cpu.regs.rflags;
  EXPECT_TRUE(same_cpu(before, w.cpu));
}

TEST(AssistFlags, ClacStacAtCpl3AndLookalikesAreRefused) {
  World w;
  w.long_mode();
  w.cpu.sregs.ss.dpl = 3;
  w.cpu.sregs.cs.selector = 0x33;
  expect_refused(w, {0x0f, 0x01, 0xcb}, EINVAL, "at CPL 3 (the CPU would raise #UD)");
  w.long_mode();
  expect_refused(w, {0xf3, 0x0f, 0x01, 0xca}, EOPNOTSUPP, "unsupported instruction f3 0f 01 ca");  // eretu
  expect_refused(w, {0xf2, 0x0f, 0x01, 0xca}, EOPNOTSUPP, "unsupported instruction");              // erets
  expect_refused(w, {0x66, 0x0f, 0x01, 0xcb}, EOPNOTSUPP, "unsupported instruction");
  expect_refused(w, {0x0f, 0x01, 0xc8}, EOPNOTSUPP, "unsupported instruction 0f 01 c8");  // monitor
  expect_refused(w, {0xf0, 0x0f, 0x01, 0xca}, EINVAL, "lock prefix on instruction f0 0f 01 ca (the CPU would raise #UD)");
}

TEST(AssistFlags, Fwait) {
  World w;
  w.long_mode();
  CpuState before = w.cpu;
  expect_ran(w, {0x9b}, AssistKind::Fwait);  // fwait
  before.regs.rip += 1;
  EXPECT_TRUE(same_cpu(before, w.cpu));
}

TEST(AssistFlags, RipWrapsAtTheModesWidth) {
  World w;
  w.real_mode();
  w.cpu.regs.rip = 0xffff;
  ASSERT_TRUE(w.run({0x9b}));
  EXPECT_EQ(w.cpu.regs.rip, 0u);
  w.protected_mode();
  w.cpu.regs.rip = 0xfffffffe;
  ASSERT_TRUE(w.run({0x0f, 0x01, 0xcb}));
  EXPECT_EQ(w.cpu.regs.rip, 1u);
}

TEST(AssistRdpid, SixtyFourBit) {
  World w;
  w.long_mode();
  w.env.msrs[kTscAux] = 0x12345678;
  w.cpu.regs.rax = ~0ull;
  w.cpu.regs.rcx = 0x1111;
  expect_ran(w, {0xf3, 0x0f, 0xc7, 0xf8}, AssistKind::Rdpid);  // rdpid %rax
  EXPECT_EQ(w.cpu.regs.rax, 0x12345678u);
  EXPECT_EQ(w.cpu.regs.rcx, 0x1111u);
  w.cpu.regs.r9 = ~0ull;
  w.env.msrs[kTscAux] = 0xaaaa000000000007;  // reserved upper half: not part of the result
  expect_ran(w, {0xf3, 0x41, 0x0f, 0xc7, 0xf9}, AssistKind::Rdpid);  // rdpid %r9
  EXPECT_EQ(w.cpu.regs.r9, 7u);
  EXPECT_EQ(w.cpu.regs.rcx, 0x1111u);
  w.cpu.regs.r9 = ~0ull;
  expect_ran(w, {0xf3, 0x49, 0x0f, 0xc7, 0xf9}, AssistKind::Rdpid);  // rex.WB rdpid %r9: W changes nothing
  EXPECT_EQ(w.cpu.regs.r9, 7u);
}

TEST(AssistRdpid, ThirtyTwoBit) {
  World w;
  w.protected_mode();
  w.env.msrs[kTscAux] = 0x3;
  w.cpu.regs.rcx = 0xffffffff;
  expect_ran(w, {0xf3, 0x0f, 0xc7, 0xf9}, AssistKind::Rdpid);  // rdpid %ecx
  EXPECT_EQ(w.cpu.regs.rcx, 3u);
}

TEST(AssistRdpid, RefusedForms) {
  World w;
  w.long_mode();
  expect_refused(w, {0xf3, 0x0f, 0xc7, 0xf8}, EIO, "TSC_AUX");  // the MSR read fails
  w.env.msrs[kTscAux] = 1;
  expect_refused(w, {0xf3, 0x0f, 0xc7, 0x38}, EOPNOTSUPP, "unsupported instruction");  // repz vmptrst (%rax)
  expect_refused(w, {0x0f, 0xc7, 0xf8}, EOPNOTSUPP, "unsupported instruction 0f c7 f8");  // rdseed %eax
  expect_refused(w, {0xf3, 0x0f, 0xc7, 0xf0}, EOPNOTSUPP, "unsupported instruction");  // /6: senduipi
}

// popcnt, lzcnt and tzcnt in 64-bit mode: operand sizes, REX registers, upper bits, flags.
TEST(AssistBitCount, PopcntSizesAndRegisters) {
  World w;
  w.long_mode();
  w.cpu.regs.rflags = 0x202 | kArith | kDF;
  w.cpu.regs.rbx = 0xffffffff000000f0;
  w.cpu.regs.rax = 0xdeadbeefcafebabe;
  expect_ran(w, {0xf3, 0x0f, 0xb8, 0xc3}, AssistKind::Popcnt);  // popcnt %ebx,%eax
  EXPECT_EQ(w.cpu.regs.rax, 4u);                                // upper source bits not counted, dest zero-extended
  EXPECT_EQ(w.cpu.regs.rflags, 0x202 | kDF);                    // OF SF ZF AF CF PF cleared, others kept

  w.cpu.regs.rbx = 0x111100000000ffff;
  w.cpu.regs.rax = 0xdeadbeefcafe1234;
  expect_ran(w, {0x66, 0xf3, 0x0f, 0xb8, 0xc3}, AssistKind::Popcnt);  // popcnt %bx,%ax
  EXPECT_EQ(w.cpu.regs.rax, 0xdeadbeefcafe0010u);

  w.cpu.regs.rbx = 0x8000000000000001;
  expect_ran(w, {0xf3, 0x48, 0x0f, 0xb8, 0xc3}, AssistKind::Popcnt);  // popcnt %rbx,%rax
  EXPECT_EQ(w.cpu.regs.rax, 2u);

  w.cpu.regs.r11 = 0xff00ff00ff00ff00;
  w.cpu.regs.r9 = 0x1234;
  w.cpu.regs.rbx = 0x1;
  w.cpu.regs.rcx = 0x5;
  expect_ran(w, {0xf3, 0x4d, 0x0f, 0xb8, 0xcb}, AssistKind::Popcnt);  // popcnt %r11,%r9
  EXPECT_EQ(w.cpu.regs.r9, 32u);
  EXPECT_EQ(w.cpu.regs.rcx, 5u);  // not rcx (ModRM.reg without REX.R)

  w.cpu.regs.r12 = 0xffffffffffff0007;
  w.cpu.regs.rdx = 0xaaaaaaaaaaaaaaaa;
  expect_ran(w, {0x66, 0xf3, 0x41, 0x0f, 0xb8, 0xd4}, AssistKind::Popcnt);  // popcnt %r12w,%dx
  EXPECT_EQ(w.cpu.regs.rdx, 0xaaaaaaaaaaaa0003u);

  w.cpu.regs.rflags = 0x202;
  w.cpu.regs.rcx = 0xffffffff00000000;  // ecx is 0
  w.cpu.regs.r15 = ~0ull;
  expect_ran(w, {0xf3, 0x44, 0x0f, 0xb8, 0xf9}, AssistKind::Popcnt);  // popcnt %ecx,%r15d
  EXPECT_EQ(w.cpu.regs.r15, 0u);
  EXPECT_EQ(w.cpu.regs.rflags, 0x202 | kZF);

  w.cpu.regs.rax = 0xff;
  expect_ran(w, {0xf3, 0x0f, 0xb8, 0xc0}, AssistKind::Popcnt);  // popcnt %eax,%eax
  EXPECT_EQ(w.cpu.regs.rax, 8u);
  EXPECT_EQ(w.cpu.regs.rflags, 0x202u);
}

TEST(AssistBitCount, Lzcnt) {
  World w;
  w.long_mode();
  uint64_t undefined = kOF | kSF | kPF | kAF;  // left as they were
  w.cpu.regs.rflags = 0x202 | undefined | kZF | kCF;
  w.cpu.regs.rbx = 1ull << 32;
  expect_ran(w, {0xf3, 0x48, 0x0f, 0xbd, 0xc3}, AssistKind::Lzcnt);  // lzcnt %rbx,%rax
  EXPECT_EQ(w.cpu.regs.rax, 31u);
  EXPECT_EQ(w.cpu.regs.rflags, 0x202 | undefined);

  w.cpu.regs.rflags = 0x202;
  w.cpu.regs.rbx = 0;
  expect_ran(w, {0xf3, 0x48, 0x0f, 0xbd, 0xc3}, AssistKind::Lzcnt);
  EXPECT_EQ(w.cpu.regs.rax, 64u);
  EXPECT_EQ(w.cpu.regs.rflags, 0x202 | kCF);

  w.cpu.regs.rbx = 1ull << 63;
  expect_ran(w, {0xf3, 0x48, 0x0f, 0xbd, 0xc3}, AssistKind::Lzcnt);
  EXPECT_EQ(w.cpu.regs.rax, 0u);
  EXPECT_EQ(w.cpu.regs.rflags, 0x202 | kZF);

  w.cpu.regs.rflags = 0x202;
  w.cpu.regs.r8 = 0xffffffff00010000;
  w.cpu.regs.rcx = ~0ull;
  expect_ran(w, {0xf3, 0x41, 0x0f, 0xbd, 0xc8}, AssistKind::Lzcnt);  // lzcnt %r8d,%ecx
  EXPECT_EQ(w.cpu.regs.rcx, 15u);

  w.cpu.regs.rsi = 0xffff0000;  // si is 0
  w.cpu.regs.rdi = 0xaaaaaaaaaaaaaaaa;
  expect_ran(w, {0x66, 0xf3, 0x0f, 0xbd, 0xfe}, AssistKind::Lzcnt);  // lzcnt %si,%di
  EXPECT_EQ(w.cpu.regs.rdi, 0xaaaaaaaaaaaa0010u);
  EXPECT_EQ(w.cpu.regs.rflags, 0x202 | kCF);
}

TEST(AssistBitCount, Tzcnt) {
  World w;
  w.long_mode();
  w.cpu.regs.rflags = 0x202 | kZF | kCF;
  w.cpu.regs.rbx = 0x100;
  expect_ran(w, {0xf3, 0x48, 0x0f, 0xbc, 0xc3}, AssistKind::Tzcnt);  // tzcnt %rbx,%rax
  EXPECT_EQ(w.cpu.regs.rax, 8u);
  EXPECT_EQ(w.cpu.regs.rflags, 0x202u);

  w.cpu.regs.rbx = 0;
  expect_ran(w, {0xf3, 0x48, 0x0f, 0xbc, 0xc3}, AssistKind::Tzcnt);
  EXPECT_EQ(w.cpu.regs.rax, 64u);
  EXPECT_EQ(w.cpu.regs.rflags, 0x202 | kCF);

  w.cpu.regs.rbx = 1;
  expect_ran(w, {0xf3, 0x48, 0x0f, 0xbc, 0xc3}, AssistKind::Tzcnt);
  EXPECT_EQ(w.cpu.regs.rax, 0u);
  EXPECT_EQ(w.cpu.regs.rflags, 0x202 | kZF);

  w.cpu.regs.r10 = 0x10000;  // r10w is 0
  w.cpu.regs.r13 = 0x123456789abcdef0;
  expect_ran(w, {0x66, 0xf3, 0x45, 0x0f, 0xbc, 0xea}, AssistKind::Tzcnt);  // tzcnt %r10w,%r13w
  EXPECT_EQ(w.cpu.regs.r13, 0x123456789abc0010u);
  EXPECT_EQ(w.cpu.regs.rflags, 0x202 | kCF);

  w.cpu.regs.rdx = 0xf000000080000000;
  w.cpu.regs.rbp = ~0ull;
  expect_ran(w, {0xf3, 0x0f, 0xbc, 0xea}, AssistKind::Tzcnt);  // tzcnt %edx,%ebp
  EXPECT_EQ(w.cpu.regs.rbp, 31u);
}

TEST(AssistBitCount, ThirtyTwoAndSixteenBitModes) {
  World w;
  w.protected_mode();
  w.cpu.regs.rbx = 0xf0f0f0f0;
  expect_ran(w, {0xf3, 0x0f, 0xb8, 0xc3}, AssistKind::Popcnt);  // popcnt %ebx,%eax
  EXPECT_EQ(w.cpu.regs.rax, 16u);
  w.cpu.regs.rax = 0x12345678;
  expect_ran(w, {0x66, 0xf3, 0x0f, 0xb8, 0xc3}, AssistKind::Popcnt);  // popcnt %bx,%ax
  EXPECT_EQ(w.cpu.regs.rax, 0x12340008u);
  w.cpu.regs.rsi = 0x00008000;
  expect_ran(w, {0xf3, 0x0f, 0xbd, 0xfe}, AssistKind::Lzcnt);  // lzcnt %esi,%edi
  EXPECT_EQ(w.cpu.regs.rdi, 16u);
  w.cpu.regs.rdx = 0x8;
  w.cpu.regs.rcx = 0xffff0000;
  expect_ran(w, {0x66, 0xf3, 0x0f, 0xbc, 0xca}, AssistKind::Tzcnt);  // tzcnt %dx,%cx
  EXPECT_EQ(w.cpu.regs.rcx, 0xffff0003u);
  // No REX outside 64-bit mode: 41 is inc %ecx.
  expect_refused(w, {0xf3, 0x41, 0x0f, 0xb8, 0xc3}, EOPNOTSUPP, "unsupported instruction f3 41 0f b8 c3");

  w.real_mode();
  w.cpu.regs.rbx = 0xffff00ff;
  w.cpu.regs.rax = 0xabcd0000;
  expect_ran(w, {0xf3, 0x0f, 0xb8, 0xc3}, AssistKind::Popcnt);  // popcnt %bx,%ax (-M i8086)
  EXPECT_EQ(w.cpu.regs.rax, 0xabcd0008u);
  expect_ran(w, {0x66, 0xf3, 0x0f, 0xb8, 0xc3}, AssistKind::Popcnt);  // popcnt %ebx,%eax
  EXPECT_EQ(w.cpu.regs.rax, 24u);
  w.cpu.regs.rcx = 0x00010001;
  expect_ran(w, {0xf3, 0x0f, 0xbd, 0xd1}, AssistKind::Lzcnt);  // lzcnt %cx,%dx
  EXPECT_EQ(w.cpu.regs.rdx & 0xffff, 15u);
  expect_ran(w, {0x66, 0xf3, 0x0f, 0xbc, 0xd1}, AssistKind::Tzcnt);  // tzcnt %ecx,%edx
  EXPECT_EQ(w.cpu.regs.rdx, 0u);
  // Real mode with a 32-bit code segment cache is not something evmm's guests run.
  w.cpu.sregs.cs.db = 1;
  expect_refused(w, {0x9b}, EOPNOTSUPP, "real mode");
}

TEST(AssistDecode, RexMustImmediatelyPrecedeTheOpcode) {
  World w;
  w.long_mode();
  w.cpu.regs.rbx = 0xffffffffffffffff;
  w.cpu.regs.rax = 0x5555555555555555;
  expect_ran(w, {0x48, 0x66, 0xf3, 0x0f, 0xb8, 0xc3}, AssistKind::Popcnt);  // rex.W popcnt %bx,%ax
  EXPECT_EQ(w.cpu.regs.rax, 0x5555555555550010u);
  expect_ran(w, {0x48, 0xf3, 0x0f, 0xb8, 0xc3}, AssistKind::Popcnt);  // rex.W popcnt %ebx,%eax
  EXPECT_EQ(w.cpu.regs.rax, 32u);
  // Of two REX prefixes only the last counts: 41 (REX.B) is dropped, 48 (REX.W) kept.
  expect_ran(w, {0xf3, 0x41, 0x48, 0x0f, 0xb8, 0xc3}, AssistKind::Popcnt);
  EXPECT_EQ(w.cpu.regs.rax, 64u);
}

TEST(AssistDecode, UnsupportedInstructionsNameTheirBytes) {
  World w;
  w.long_mode();
  expect_refused(w, {0x0f, 0x01, 0xee}, EOPNOTSUPP, "unsupported instruction 0f 01 ee");  // rdpkru
  expect_refused(w, {0x0f, 0x01, 0xee, 0x90, 0x90}, EOPNOTSUPP, "unsupported instruction 0f 01 ee 90 90");
  expect_refused(w, {0x0f, 0xbc, 0xc3}, EOPNOTSUPP, "unsupported instruction 0f bc c3");        // bsf
  expect_refused(w, {0x0f, 0xbd, 0xc3}, EOPNOTSUPP, "unsupported instruction");                 // bsr
  expect_refused(w, {0xf2, 0x0f, 0xb8, 0xc3}, EOPNOTSUPP, "unsupported instruction");
  // F2 then F3: the last of the two is the mandatory prefix, so this is popcnt (as Zydis decodes it).
  expect_ran(w, {0xf2, 0xf3, 0x0f, 0xb8, 0xc3}, AssistKind::Popcnt);
  w.long_mode();
  expect_refused(w, {0xf0, 0xf3, 0x0f, 0xb8, 0xc3}, EINVAL, "lock prefix");
  expect_refused(w, {0xce}, EOPNOTSUPP, "unsupported instruction ce");                // into
  expect_refused(w, {0xdd, 0x07}, EOPNOTSUPP, "unsupported instruction dd 07");  // fldl (%rdi): x87 memory forms
}

// Every supported encoding, cut short at every length, is "truncated"; whole, it runs.
TEST(AssistDecode, TruncatedAtEveryLength) {
  World w;
  w.env.msrs[kTscAux] = 1;
  w.gate64(3, 0xffffffff81000100, kSelCode64, 0x8e);
  w.gate64(0x80, 0xffffffff81000100, kSelCode64, 0x8e);
  const Bytes encodings[] = {
      {0xcc},                                 // int3
      {0xcd, 0x80},                           // int $0x80
      {0x0f, 0x01, 0xca},                     // clac
      {0x0f, 0x01, 0xcb},                     // stac
      {0x9b},                                 // fwait
      {0xf3, 0x0f, 0xc7, 0xf8},               // rdpid %rax
      {0xf3, 0x41, 0x0f, 0xc7, 0xf9},         // rdpid %r9
      {0xf3, 0x0f, 0xb8, 0xc3},               // popcnt %ebx,%eax
      {0x66, 0xf3, 0x0f, 0xb8, 0xc3},         // popcnt %bx,%ax
      {0x66, 0xf3, 0x41, 0x0f, 0xb8, 0xd4},   // popcnt %r12w,%dx
      {0xf3, 0x48, 0x0f, 0xbd, 0xc3},         // lzcnt %rbx,%rax
      {0x66, 0xf3, 0x45, 0x0f, 0xbc, 0xea},   // tzcnt %r10w,%r13w
      {0x2e, 0x3e, 0x26, 0x64, 0x65, 0x36, 0x67, 0xf3, 0x48, 0x0f, 0xbc, 0xc3},  // every segment prefix
  };
  for (const Bytes& insn : encodings) {
    for (size_t cut = 0; cut < insn.size(); ++cut) {
      w.long_mode();
      Bytes part(insn.begin(), insn.begin() + static_cast<long>(cut));
      SCOPED_TRACE(format_bytes(insn) + " cut to " + std::to_string(cut));
      expect_refused(w, part, EINVAL, "truncated instruction");
    }
    w.long_mode();
    auto r = complete_instruction(insn, w.cpu, w.env);
    EXPECT_TRUE(r) << format_bytes(insn) << ": " << r.error().message();
  }
}

TEST(AssistDecode, FifteenByteLimit) {
  World w;
  w.long_mode();
  Bytes insn(14, 0x2e);
  insn.push_back(0x9b);
  expect_ran(w, insn, AssistKind::Fwait);  // 14 prefixes and fwait: exactly 15 bytes
  Bytes longer(15, 0x2e);
  longer.push_back(0x9b);  // only the first 15 bytes are ever looked at
  w.long_mode();
  expect_refused(w, longer, EINVAL, "longer than 15 bytes");
  expect_refused(w, Bytes(15, 0x66), EINVAL, "longer than 15 bytes");
  expect_refused(w, Bytes(14, 0x66), EINVAL, "truncated instruction");
}

}  // namespace
}  // namespace evmm
