// The faults an assisted instruction raises: each comes back with the vector and error code the
// CPU would push (SDM vol. 3 6.13, 6.15), and with neither registers nor guest memory changed.
#include <gtest/gtest.h>

#include <cstring>
#include <optional>

#include "testing/assist_test_env.h"
#include "vcpu/assist.h"

namespace evmm {
namespace {

using namespace assist_testing;
using x86::Vector;

bool same_cpu(const CpuState& a, const CpuState& b) { return std::memcmp(&a, &b, sizeof a) == 0; }

void expect_fault(World& w, std::initializer_list<uint8_t> insn, Vector vector, std::optional<uint32_t> error_code,
                  std::optional<uint64_t> cr2 = std::nullopt) {
  CpuState before = w.cpu;
  auto memory_before = w.env.snapshot();
  auto r = w.run(insn);
  ASSERT_FALSE(r) << "succeeded as " << to_string(*r);
  ASSERT_TRUE(r.error().fault()) << r.error().message();
  EXPECT_EQ(r.error().fault()->vector, vector) << r.error().message();
  EXPECT_EQ(r.error().fault()->error_code, error_code) << r.error().message();
  EXPECT_EQ(r.error().fault()->cr2, cr2);
  EXPECT_NE(r.error().message().find(fmt::format("would raise #{}", x86::to_string(vector))), std::string::npos)
      << r.error().message();
  EXPECT_TRUE(same_cpu(before, w.cpu));
  EXPECT_TRUE(memory_before == w.env.snapshot());
}

constexpr uint32_t kIdtError80 = 0x80 * 8 + 2;  // IDT bit set, EXT clear: int n is not external

TEST(AssistFault, ErrorCodeEncodings) {
  EXPECT_EQ(x86::selector_error(0x3b), 0x38u);  // RPL is not part of it
  EXPECT_EQ(x86::selector_error(0x3c), 0x3cu);  // TI is
  EXPECT_EQ(x86::selector_error(0x38, true), 0x39u);
  EXPECT_EQ(x86::idt_error(0x80), 0x402u);
  EXPECT_EQ(x86::idt_error(0x0d, true), 0x6bu);
}

TEST(AssistFault, IdtChecksRaiseGpOrNpWithTheIdtErrorCode) {
  World w;
  w.long_mode();
  w.gate64(0x80, 0xffffffff81000100, kSelCode64, 0x8e);
  w.cpu.sregs.idt.limit = 0x80 * 16 - 1;
  expect_fault(w, {0xcd, 0x80}, Vector::GP, kIdtError80);
  w.cpu.sregs.idt.limit = 0xfff;
  w.gate64(0x80, 0xffffffff81000100, kSelCode64, 0x0e);
  expect_fault(w, {0xcd, 0x80}, Vector::NP, kIdtError80);
  w.gate64(0x80, 0xffffffff81000100, kSelCode64, 0x8c);  // a call gate
  expect_fault(w, {0xcd, 0x80}, Vector::GP, kIdtError80);
  w.protected_mode();
  w.gate32(0x80, 0x1000, kSelCode32, 0x8c);
  expect_fault(w, {0xcd, 0x80}, Vector::GP, kIdtError80);
}

TEST(AssistFault, GateDplBelowCplIsGpBeforeTheNotPresentNp) {
  World w;
  w.long_mode();
  w.cpu.sregs.cs.selector = 0x33;
  w.cpu.sregs.ss.dpl = 3;
  w.gate64(0x80, 0xffffffff81000100, kSelCode64, 0x0e);  // DPL 0 and not present
  expect_fault(w, {0xcd, 0x80}, Vector::GP, kIdtError80);
}

TEST(AssistFault, CodeSegmentChecksNameTheSelector) {
  World w;
  w.long_mode();
  struct Case {
    uint16_t selector;
    Vector vector;
    uint32_t error_code;
  };
  for (auto [selector, vector, error_code] :
       {Case{0x0003, Vector::GP, 0}, Case{kSelData, Vector::GP, kSelData}, Case{kSelCode32, Vector::GP, kSelCode32},
        Case{kSelCode64Dpl3, Vector::GP, kSelCode64Dpl3}, Case{0x0080, Vector::GP, 0x80}, Case{0x000f, Vector::GP, 0xc},
        Case{kSelCode64NotPresent, Vector::NP, kSelCode64NotPresent},
        Case{kSelCode64NotPresent | 3, Vector::NP, kSelCode64NotPresent}}) {
    SCOPED_TRACE(selector);
    w.gate64(0x80, 0xffffffff81000100, selector, 0x8e);
    expect_fault(w, {0xcd, 0x80}, vector, error_code);
  }
}

TEST(AssistFault, BadTargetsAndStacksRaiseGpOrSsWithZero) {
  World w;
  w.long_mode();
  w.gate64(3, 0x0000800000000000, kSelCode64, 0x8e);
  expect_fault(w, {0xcc}, Vector::GP, 0);
  w.gate64(3, 0xffffffff81000100, kSelCode64, 0x8e);
  w.cpu.regs.rsp = 0x0000800000000010;
  expect_fault(w, {0xcc}, Vector::SS, 0);

  w.protected_mode();
  w.gate32(0x21, 0x2000, kSelCode32Based, 0x8f);
  expect_fault(w, {0xcd, 0x21}, Vector::GP, 0);
  w.gate32(0x21, 0x1000, kSelCode32, 0x8e);
  w.cpu.sregs.ss.g = 0;
  w.cpu.sregs.ss.limit = 0x1002;
  w.cpu.regs.rsp = 0x1004;
  expect_fault(w, {0xcd, 0x21}, Vector::SS, 0);
}

TEST(AssistFault, ClacAndStacAboveCpl0RaiseUdWithoutAnErrorCode) {
  World w;
  w.long_mode();
  w.cpu.sregs.ss.dpl = 3;
  w.cpu.sregs.cs.selector = 0x33;
  expect_fault(w, {0x0f, 0x01, 0xca}, Vector::UD, std::nullopt);
  expect_fault(w, {0x0f, 0x01, 0xcb}, Vector::UD, std::nullopt);
}

TEST(AssistFault, UnmappedPagesRaisePfWithTheAddressAndTheAccess) {
  World w;
  w.long_mode();
  w.gate64(3, 0xffffffff81000100, kSelCode64, 0x8e);
  w.env.map_identity(0x7000, 2);  // the stack only: the IDT read is the first to miss
  expect_fault(w, {0xcc}, Vector::PF, 0, World::kIdt + 3 * 16);
  w.env.map_identity(0x1000, 2);  // GDT and IDT
  w.env.map(0xffffc90000008000, 0x12000);
  w.cpu.regs.rsp = 0xffffc90000008018;  // SS and RSP fit on the mapped page, RFLAGS does not
  expect_fault(w, {0xcc}, Vector::PF, 2, 0xffffc90000007ff8);  // W/R set: a write
  auto r = w.run({0xcc});
  EXPECT_EQ(r.error().code(), EFAULT);  // still a failed guest memory access
}

TEST(AssistFault, WhatEvmmCannotDoIsNoFault) {
  World w;
  w.long_mode();
  w.gate64(0x80, 0xffffffff81000100, kSelCode64, 0x8e);
  auto r = w.run({0x0f, 0x01, 0xee});  // rdpkru: not an assist
  ASSERT_FALSE(r);
  EXPECT_FALSE(r.error().fault());
  w.env.map(World::kIdt, 0x200000);  // the IDT maps beyond guest RAM: a stop, not a guest fault
  r = w.run({0xcd, 0x80});
  ASSERT_FALSE(r);
  EXPECT_EQ(r.error().code(), EFAULT);
  EXPECT_NE(r.error().message().find("not guest RAM"), std::string::npos) << r.error().message();
  EXPECT_FALSE(r.error().fault());
}

}  // namespace
}  // namespace evmm
