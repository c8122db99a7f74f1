// The fault rules of the FPU assists, one by one (SDM vol. 2, the instructions' exception
// sections): each fault comes back with its vector and error code, and changes neither the state
// nor guest memory.
#include <gtest/gtest.h>

#include <cstring>

#include "testing/assist_test_env.h"
#include "vcpu/x86_fpu.h"

namespace evmm {
namespace {

using namespace x86;
using assist_testing::FakeEnv;

constexpr uint64_t kOp = 0x10000;
constexpr uint64_t kAllSse = xfeature::kX87 | xfeature::kSse | xfeature::kAvx;

class AssistFpu : public ::testing::Test {
 protected:
  AssistFpu() : mem(env, assist_testing::long_mode_state(), false) {
    std::vector<uint8_t> area(XsaveLayout::host().area_size(kAllSse), 0);
    area[0] = 0x7f;
    area[1] = 0x03;
    uint32_t mxcsr = 0x1f80;
    std::memcpy(&area[24], &mxcsr, 4);
    area[512] = 3;
    state = std::move(*FpuState::create(std::move(area)));
    c.cr0 = 0x80000033;  // PE MP ET NE PG
    c.cr4 = kCr4Osfxsr | kCr4Osxmmexcpt | kCr4Osxsave;
    c.xcr0 = kAllSse;
    c.bits64 = true;
  }

  // The result must be this fault, with state and memory as before.
  template <typename R>
  void expect_fault(R r, Vector v, std::optional<uint32_t> code) {
    ASSERT_FALSE(r);
    ASSERT_TRUE(r.error().fault()) << r.error().message();
    EXPECT_EQ(r.error().fault()->vector, v) << r.error().message();
    EXPECT_EQ(r.error().fault()->error_code, code) << r.error().message();
    EXPECT_TRUE(std::equal(before_.begin(), before_.end(), state.bytes().begin()));
    EXPECT_TRUE(env.snapshot() == memory_before_);
  }
  void snapshot() {
    before_.assign(state.bytes().begin(), state.bytes().end());
    memory_before_ = env.snapshot();
  }
  void set_fsw(uint16_t fsw) { state.set(FpuState::kFsw, fsw, 2); }

  FakeEnv env;
  LinearMemory mem;
  FpuState state = std::move(*FpuState::create(std::vector<uint8_t>(FpuState::kMinSize)));
  FpuCpu c;

 private:
  std::vector<uint8_t> before_, memory_before_;
};

TEST_F(AssistFpu, LdmxcsrFaults) {
  env.poke_le(kOp, 0x1f80, 4);
  snapshot();
  c.cr0 |= kCr0Em | kCr0Ts;
  expect_fault(ldmxcsr(state, c, mem, kOp), Vector::UD, {});  // #UD before #NM
  c.cr0 &= ~kCr0Em;
  expect_fault(ldmxcsr(state, c, mem, kOp), Vector::NM, {});
  c.cr0 &= ~kCr0Ts;
  c.cr4 &= ~kCr4Osfxsr;
  expect_fault(stmxcsr(state, c, mem, kOp), Vector::UD, {});
  c.cr4 |= kCr4Osfxsr;
  env.poke_le(kOp, 0x10000 | 0x1f80, 4);  // bit 16 is reserved
  snapshot();
  expect_fault(ldmxcsr(state, c, mem, kOp), Vector::GP, 0u);
  env.map(0, 0);  // paging on: kOp is not mapped
  expect_fault(ldmxcsr(state, c, mem, kOp), Vector::PF, 0u);
}

// VLDMXCSR/VSTMXCSR: #UD for CR4.OSXSAVE or XCR0[2:1], not for CR0.EM or CR4.OSFXSR.
TEST_F(AssistFpu, VexLdmxcsrFaults) {
  env.poke_le(kOp, 0x1f80, 4);
  snapshot();
  c.cr0 |= kCr0Em;
  c.cr4 &= ~kCr4Osfxsr;
  EXPECT_TRUE(ldmxcsr(state, c, mem, kOp, true));
  c.xcr0 = 3;
  snapshot();
  expect_fault(ldmxcsr(state, c, mem, kOp, true), Vector::UD, {});
  c.xcr0 = kAllSse;
  c.cr4 &= ~kCr4Osxsave;
  expect_fault(stmxcsr(state, c, mem, kOp, true), Vector::UD, {});
  c.cr4 |= kCr4Osxsave;
  c.cr0 |= kCr0Ts;
  expect_fault(stmxcsr(state, c, mem, kOp, true), Vector::NM, {});
}

TEST_F(AssistFpu, LdmxcsrStmxcsrRoundTrip) {
  env.poke_le(kOp, 0x9fc0, 4);
  ASSERT_TRUE(ldmxcsr(state, c, mem, kOp));
  EXPECT_EQ(state.mxcsr(), 0x9fc0u);
  ASSERT_TRUE(stmxcsr(state, c, mem, kOp + 64));
  EXPECT_EQ(env.peek_le(kOp + 64, 4), 0x9fc0u);
}

TEST_F(AssistFpu, FxsaveFxrstorFaults) {
  snapshot();
  c.cr0 |= kCr0Em;  // #NM, not #UD, for CR0.EM here
  expect_fault(fxsave(state, c, mem, kOp, true), Vector::NM, {});
  expect_fault(fxrstor(state, c, mem, kOp, true), Vector::NM, {});
  c.cr0 = (c.cr0 & ~kCr0Em) | kCr0Ts;
  expect_fault(fxsave(state, c, mem, kOp, false), Vector::NM, {});
  c.cr0 &= ~kCr0Ts;
  expect_fault(fxsave(state, c, mem, kOp + 8, true), Vector::GP, 0u);
  expect_fault(fxrstor(state, c, mem, kOp + 8, true), Vector::GP, 0u);
  ASSERT_TRUE(fxsave(state, c, mem, kOp, true));
  env.poke_le(kOp + 24, 0x1f80 | (1u << 20), 4);
  snapshot();
  expect_fault(fxrstor(state, c, mem, kOp, true), Vector::GP, 0u);
}

// With CR4.OSFXSR clear, MXCSR and XMM are neither saved nor restored, so a reserved MXCSR bit
// in the image does not fault.
TEST_F(AssistFpu, FxsaveWithoutOsfxsrSkipsSse) {
  state.set(FpuState::kXmm0, 0x1122334455667788, 8);
  c.cr4 &= ~kCr4Osfxsr;
  env.poke_le(kOp + 160, 0xaaaa, 8);
  env.poke_le(kOp + 24, 0xffffffff, 4);
  ASSERT_TRUE(fxsave(state, c, mem, kOp, true));
  EXPECT_EQ(env.peek_le(kOp + 160, 8), 0xaaaau);
  EXPECT_EQ(env.peek_le(kOp + 24, 4), 0xffffffffu);
  EXPECT_EQ(env.peek_le(kOp, 2), 0x37fu);
  ASSERT_TRUE(fxrstor(state, c, mem, kOp, true));
  EXPECT_EQ(state.mxcsr(), 0x1f80u);
  EXPECT_EQ(state.get(FpuState::kXmm0, 8), 0x1122334455667788u);
}

TEST_F(AssistFpu, XgetbvXsetbvFaults) {
  snapshot();
  EXPECT_EQ(*xgetbv(state, c, 0), kAllSse);
  expect_fault(xgetbv(state, c, 2), Vector::GP, 0u);
  if (!XsaveLayout::host().xgetbv1) expect_fault(xgetbv(state, c, 1), Vector::GP, 0u);
  else EXPECT_EQ(*xgetbv(state, c, 1), 3u);
  expect_fault(xsetbv(state, c, 1, 3), Vector::GP, 0u);
  c.cpl = 3;
  expect_fault(xsetbv(state, c, 0, 3), Vector::GP, 0u);
  c.cpl = 0;
  for (uint64_t bad : {0x2ull, 0x5ull, 0x27ull, 0x67ull, 0xe3ull, 1ull << 63, 0x9ull})
    expect_fault(xsetbv(state, c, 0, bad), Vector::GP, 0u);
  EXPECT_EQ(*xsetbv(state, c, 0, 3), 3u);
  c.cr4 &= ~kCr4Osxsave;
  expect_fault(xgetbv(state, c, 0), Vector::UD, {});
  expect_fault(xsetbv(state, c, 0, 3), Vector::UD, {});
}

TEST_F(AssistFpu, XsaveXrstorFaults) {
  snapshot();
  c.cr0 |= kCr0Ts;
  expect_fault(xsave(state, c, mem, kOp, ~0ull, true), Vector::NM, {});
  expect_fault(xrstor(state, c, mem, kOp, ~0ull, true), Vector::NM, {});
  c.cr0 &= ~kCr0Ts;
  expect_fault(xsave(state, c, mem, kOp + 16, ~0ull, true), Vector::GP, 0u);  // 16- but not 64-byte aligned
  expect_fault(xrstor(state, c, mem, kOp + 32, ~0ull, true), Vector::GP, 0u);
  ASSERT_TRUE(xsave(state, c, mem, kOp, ~0ull, true));
  EXPECT_EQ(env.peek_le(kOp + 512, 8), 3u);
  env.poke_le(kOp + 512, 1ull << 9 | 3, 8);  // PKRU, not in XCR0
  snapshot();
  expect_fault(xrstor(state, c, mem, kOp, ~0ull, true), Vector::GP, 0u);
  env.poke_le(kOp + 512, 3, 8);
  env.poke_le(kOp + 528, 1, 8);  // reserved header bytes 23:16
  snapshot();
  expect_fault(xrstor(state, c, mem, kOp, ~0ull, true), Vector::GP, 0u);
  env.poke_le(kOp + 528, 0, 8);
  env.poke_le(kOp + 24, 1u << 31, 4);
  snapshot();
  expect_fault(xrstor(state, c, mem, kOp, ~0ull, true), Vector::GP, 0u);
  EXPECT_TRUE(xrstor(state, c, mem, kOp, 1, true));  // x87 only: MXCSR not loaded
  // The compacted form: XSTATE_BV must lie within XCOMP_BV, and XCOMP_BV within XCR0.
  env.poke_le(kOp + 24, 0x1f80, 4);
  env.poke_le(kOp + 520, 1ull << 63 | 1, 8);
  snapshot();
  expect_fault(xrstor(state, c, mem, kOp, ~0ull, true), Vector::GP, 0u);
  env.poke_le(kOp + 520, 1ull << 63 | 1ull << 9 | 3, 8);
  snapshot();
  expect_fault(xrstor(state, c, mem, kOp, ~0ull, true), Vector::GP, 0u);
  env.poke_le(kOp + 520, 1ull << 63 | 3, 8);
  EXPECT_EQ(static_cast<bool>(xrstor(state, c, mem, kOp, ~0ull, true)), XsaveLayout::host().xsavec);
  c.cr4 &= ~kCr4Osxsave;
  snapshot();
  expect_fault(xsave(state, c, mem, kOp, ~0ull, true), Vector::UD, {});
}

// XRSTOR puts a requested component that XSTATE_BV leaves out in its initial configuration.
TEST_F(AssistFpu, XrstorInitialisesComponentsNotInXstateBv) {
  state.set(FpuState::kXmm0, 0x55, 8);
  state.set(FpuState::kFcw, 0x27f, 2);
  env.poke_le(kOp + 512, 0, 8);
  ASSERT_TRUE(xrstor(state, c, mem, kOp, kAllSse, true));
  EXPECT_EQ(state.get(FpuState::kXmm0, 8), 0u);
  EXPECT_EQ(state.fcw(), 0x37fu);
  EXPECT_EQ(state.xstate_bv() & kAllSse, 0u);
}

TEST_F(AssistFpu, FwaitFaults) {
  snapshot();
  c.cr0 |= kCr0Ts;
  c.cr0 &= ~kCr0Mp;
  EXPECT_TRUE(fwait(state, c));  // TS without MP: no #NM for wait
  c.cr0 |= kCr0Mp;
  expect_fault(fwait(state, c), Vector::NM, {});
  c.cr0 &= ~kCr0Ts;
  set_fsw(0x8081);  // ES, but FCW 37F masks IE: nothing is pending (the CPU recomputes ES on load)
  EXPECT_TRUE(fwait(state, c));
  state.set(FpuState::kFcw, 0x37e, 2);  // IE unmasked...
  set_fsw(0x0001);                        // ...and flagged, though ES is clear
  snapshot();
  expect_fault(fwait(state, c), Vector::MF, {});
  c.cr0 &= ~kCr0Ne;
  auto r = fwait(state, c);
  ASSERT_FALSE(r);
  EXPECT_EQ(r.error().code(), EOPNOTSUPP);  // FERR#
  EXPECT_NE(r.error().message().find("FERR#"), std::string::npos);
}

TEST_F(AssistFpu, X87RegisterFaults) {
  uint64_t rax = 0, rflags = 2;
  snapshot();
  c.cr0 |= kCr0Em;
  expect_fault(x87_register_op(state, c, 0xd9, 0xe8, rax, rflags), Vector::NM, {});
  c.cr0 = (c.cr0 & ~kCr0Em) | kCr0Ts;
  expect_fault(x87_register_op(state, c, 0xd9, 0xe8, rax, rflags), Vector::NM, {});
  c.cr0 &= ~kCr0Ts;
  state.set(FpuState::kFcw, 0x37b, 2);  // ZE unmasked
  set_fsw(0x8084);
  snapshot();
  expect_fault(x87_register_op(state, c, 0xd9, 0xe8, rax, rflags), Vector::MF, {});  // fld1 waits
  ASSERT_TRUE(x87_register_op(state, c, 0xdf, 0xe0, rax, rflags));                  // fnstsw ax does not
  EXPECT_EQ(rax, 0x8084u);
  ASSERT_TRUE(x87_register_op(state, c, 0xdb, 0xe2, rax, rflags));  // fnclex
  EXPECT_EQ(state.fsw(), 0u);
  for (auto [op, modrm] : {std::pair{0xdb, 0xf8}, {0xd9, 0xd8}, {0xdd, 0xf0}, {0xd9, 0x00}}) {
    EXPECT_FALSE(x87_register_op_valid(uint8_t(op), uint8_t(modrm)));
    auto r = x87_register_op(state, c, uint8_t(op), uint8_t(modrm), rax, rflags);
    ASSERT_FALSE(r);
    EXPECT_EQ(r.error().code(), EOPNOTSUPP);
  }
}

// Whether this CPU's fxsave stores the last x87 instruction's pointer when no exception is pending:
// Intel's does; AMD's stores FIP/FDP/FOP only with FSW.ES set (AMD APM vol. 5, FXSAVE), and the
// replayed x87 forms keep the host CPU's behaviour, which is the guest's.
bool host_records_fip() {
  alignas(16) uint8_t area[512] = {};
  asm volatile("fninit; fld1; fxsave64 %0; fninit" : "=m"(area));
  uint64_t fip;
  std::memcpy(&fip, area + FpuState::kFip, 8);
  return fip != 0;
}

// fld1 records the instruction's offset as FIP (where the CPU records it at all); fcomi sets ZF,
// PF, CF from the comparison.
TEST_F(AssistFpu, X87RecordsFipAndFlags) {
  uint64_t rax = 0, rflags = 2 | 0x800;  // OF set: fcomi clears it
  const bool records = host_records_fip();
  c.rip = 0xffffffff81234567;
  ASSERT_TRUE(x87_register_op(state, c, 0xd9, 0xe8, rax, rflags));  // fld1
  EXPECT_EQ(state.get(FpuState::kFip, 8), records ? c.rip : 0u);
  ASSERT_TRUE(x87_register_op(state, c, 0xd9, 0xee, rax, rflags));  // fldz
  ASSERT_TRUE(x87_register_op(state, c, 0xdb, 0xf1, rax, rflags));  // fcomi st, st(1): 0 < 1
  EXPECT_EQ(rflags, 2u | 1u);                                         // CF only
  c.bits64 = false;
  c.rip = 0x12345678;
  ASSERT_TRUE(x87_register_op(state, c, 0xde, 0xc1, rax, rflags));  // faddp
  EXPECT_EQ(state.get(FpuState::kFip, 8), records ? 0x12345678u : 0u);
}

}  // namespace
}  // namespace evmm

namespace evmm {
namespace {

// The FPU forms through complete_instruction: decode, operand address, write-back, RIP.
TEST(AssistFpuDispatch, CompletesAndWritesBack) {
  assist_testing::World w;
  w.long_mode();
  w.cpu.sregs.cr4 |= x86::kCr4Osfxsr | x86::kCr4Osxsave;
  w.env.xcr0 = 7;
  w.cpu.regs.rdi = 0x9000;
  w.env.poke_le(0x9000, 0x9f80, 4);
  uint64_t rip = w.cpu.regs.rip;
  ASSERT_EQ(*w.run({0xc5, 0xf8, 0xae, 0x17}), AssistKind::Ldmxcsr);  // vldmxcsr (%rdi)
  EXPECT_EQ(w.env.fpu[24] | w.env.fpu[25] << 8, 0x9f80);
  EXPECT_EQ(w.cpu.regs.rip, rip + 4);
  w.cpu.regs.rdi = 0x9040;
  ASSERT_EQ(*w.run({0x0f, 0xae, 0x1f}), AssistKind::Stmxcsr);  // stmxcsr (%rdi)
  EXPECT_EQ(w.env.peek_le(0x9040, 4), 0x9f80u);
  w.cpu.regs.rcx = 0;
  ASSERT_EQ(*w.run({0x0f, 0x01, 0xd0}), AssistKind::Xgetbv);
  EXPECT_EQ(w.cpu.regs.rax, 7u);
  EXPECT_EQ(w.cpu.regs.rdx, 0u);
  w.cpu.regs.rax = 3;
  ASSERT_EQ(*w.run({0x0f, 0x01, 0xd1}), AssistKind::Xsetbv);
  EXPECT_EQ(w.env.xcr0, 3u);
  ASSERT_EQ(*w.run({0xd9, 0xe8}), AssistKind::X87);  // fld1
  w.cpu.regs.rax = 0xffffffffffffffff;
  ASSERT_EQ(*w.run({0xdf, 0xe0}), AssistKind::X87);  // fnstsw ax: TOP 7
  EXPECT_EQ(w.cpu.regs.rax, 0xffffffffffff3800u);
  // KVM refusing an XCR0 the guest's CPUID lacks is the guest's #GP(0).
  w.env.xcr0_supported = 3;
  w.cpu.regs.rax = 7;
  auto r = w.run({0x0f, 0x01, 0xd1});
  ASSERT_FALSE(r);
  ASSERT_TRUE(r.error().fault());
  EXPECT_EQ(r.error().fault()->vector, x86::Vector::GP);
  // In 64-bit mode a non-canonical operand is #GP(0).
  w.cpu.regs.rdi = 0x8000000000000000;
  r = w.run({0x0f, 0xae, 0x1f});
  ASSERT_FALSE(r);
  ASSERT_TRUE(r.error().fault());
  EXPECT_EQ(r.error().fault()->vector, x86::Vector::GP);
}

}  // namespace
}  // namespace evmm
