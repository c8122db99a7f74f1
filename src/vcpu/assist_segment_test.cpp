// lsl and lar (assist_segment.cpp): the limit or access rights of a valid, visible descriptor with
// ZF set; ZF clear and the destination untouched for every reason the SDM lists; faults only from
// the accesses themselves.
#include <gtest/gtest.h>

#include "testing/assist_test_env.h"
#include "vcpu/assist.h"
#include "vcpu/x86_arch.h"

namespace evmm {
namespace {

using namespace assist_testing;
namespace fl = x86::rflags;

constexpr uint8_t kLslEaxEcx[] = {0x0f, 0x03, 0xc1};
constexpr uint8_t kLarEaxEcx[] = {0x0f, 0x02, 0xc1};

// Runs insn with rcx = selector and returns ZF; rax starts as a marker.
bool query(World& w, std::span<const uint8_t> insn, uint16_t selector) {
  w.cpu.regs.rax = 0x1111222233334444;
  w.cpu.regs.rcx = 0xabcd0000u | selector;
  w.cpu.regs.rflags = 0x202;
  uint64_t rip = w.cpu.regs.rip;
  auto r = complete_instruction(insn, w.cpu, w.env);
  EXPECT_TRUE(r) << r.error().message();
  EXPECT_EQ(w.cpu.regs.rip, rip + insn.size());
  EXPECT_EQ(w.cpu.regs.rflags & ~fl::kZF, 0x202u);  // only ZF changes
  return (w.cpu.regs.rflags & fl::kZF) != 0;
}

TEST(AssistSegment, LslAndLarOfValidDescriptors) {
  World w;
  w.long_mode();
  ASSERT_TRUE(query(w, kLslEaxEcx, kSelData));
  EXPECT_EQ(w.cpu.regs.rax, 0xffffffffu);  // 4 GiB, G=1: scaled, and zero-extended to 64 bits
  ASSERT_TRUE(query(w, kLslEaxEcx, kSelCode32Based));
  EXPECT_EQ(w.cpu.regs.rax, 0x1fffu);  // byte-granular limit
  ASSERT_TRUE(query(w, kLarEaxEcx, kSelData));
  EXPECT_EQ(w.cpu.regs.rax, 0x00c09300u);  // type, S, DPL, P and AVL, L, D/B, G; not limit 19:16
  // 16-bit operand size: lar keeps bits 15:8 only and writes only ax.
  const uint8_t lar16[] = {0x66, 0x0f, 0x02, 0xc1};
  ASSERT_TRUE(query(w, lar16, kSelData));
  EXPECT_EQ(w.cpu.regs.rax, 0x1111222233339300u);
  // 64-bit operand size from memory: lsl (%rdi), %rax.
  w.env.poke_le(0x6000, kSelCode32Based, 2);
  w.cpu.regs.rdi = 0x6000;
  const uint8_t lsl_mem[] = {0x48, 0x0f, 0x03, 0x07};
  ASSERT_TRUE(query(w, lsl_mem, 0));
  EXPECT_EQ(w.cpu.regs.rax, 0x1fffu);
}

TEST(AssistSegment, InvalidOrInvisibleDescriptorsOnlyClearZf) {
  World w;
  w.long_mode();
  auto untouched = [&] { EXPECT_EQ(w.cpu.regs.rax, 0x1111222233334444u); };
  EXPECT_FALSE(query(w, kLslEaxEcx, 0));  // null
  untouched();
  EXPECT_FALSE(query(w, kLslEaxEcx, 3));  // null with RPL 3
  untouched();
  EXPECT_FALSE(query(w, kLslEaxEcx, 0x80));  // beyond the GDT limit 0x7f
  untouched();
  EXPECT_FALSE(query(w, kLslEaxEcx, kSelData | 4));  // the LDT, and none is loaded
  untouched();
  EXPECT_FALSE(query(w, kLslEaxEcx, kSelData | 3));  // RPL 3 above DPL 0
  untouched();
  // A conforming code segment is visible whatever the RPL.
  w.env.poke_le(kGdtBase + 0x48, 0x00cf9f000000ffff, 8);
  EXPECT_TRUE(query(w, kLslEaxEcx, 0x48 | 3));
  // At CPL 3 a DPL 0 data segment is invisible.
  w.cpu.sregs.cs.selector |= 3;
  w.cpu.sregs.ss.dpl = 3;
  EXPECT_FALSE(query(w, kLslEaxEcx, kSelData));
}

TEST(AssistSegment, SystemDescriptorsByModeAndInstruction) {
  World w;
  w.long_mode();
  // A 64-bit available TSS (type 9), limit 0x67: valid for both.
  w.env.poke_le(kGdtBase + 0x50, 0x0000890030000067, 8);
  ASSERT_TRUE(query(w, kLslEaxEcx, 0x50));
  EXPECT_EQ(w.cpu.regs.rax, 0x67u);
  // A 16-bit TSS (type 1) does not exist in IA-32e mode; outside it, it is valid.
  w.env.poke_le(kGdtBase + 0x50, 0x0000810030000067, 8);
  EXPECT_FALSE(query(w, kLslEaxEcx, 0x50));
  // A call gate (type 0xC) has access rights but no limit.
  w.env.poke_le(kGdtBase + 0x50, 0x00008c0000080000, 8);
  EXPECT_FALSE(query(w, kLslEaxEcx, 0x50));
  EXPECT_TRUE(query(w, kLarEaxEcx, 0x50));
  // An interrupt gate (type 0xE) is valid for neither.
  w.env.poke_le(kGdtBase + 0x50, 0x00008e0000080000, 8);
  EXPECT_FALSE(query(w, kLarEaxEcx, 0x50));
  w.protected_mode();
  w.env.poke_le(kGdtBase + 0x50, 0x0000810030000067, 8);
  EXPECT_TRUE(query(w, kLslEaxEcx, 0x50));
}

TEST(AssistSegment, AnUnmappedDescriptorTableIsAPageFault) {
  World w;
  w.long_mode();
  w.env.map_identity(0, 16);  // 4 KiB pages from now on; the GDT page (0x1000) is among them
  w.cpu.sregs.gdt = {0x20000, 0x7f, {}};  // not mapped
  w.cpu.regs.rcx = kSelData;
  CpuState before = w.cpu;
  auto r = w.run({0x0f, 0x03, 0xc1});
  ASSERT_FALSE(r);
  ASSERT_TRUE(r.error().fault()) << r.error().message();
  EXPECT_EQ(r.error().fault()->vector, x86::Vector::PF);
  EXPECT_EQ(r.error().fault()->error_code, 0u);  // supervisor read of a page not present
  EXPECT_EQ(r.error().fault()->cr2, 0x20018u);
  EXPECT_EQ(std::memcmp(&before, &w.cpu, sizeof before), 0);
}

}  // namespace
}  // namespace evmm
