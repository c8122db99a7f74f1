// Memory operands of the assists: every addressing form Zydis hands over (ModRM/SIB, 16/32/64-bit
// addressing, RIP-relative), segments (overrides, bases, limits, expand-down), canonical checks,
// and the software page walk (read-only and user pages, SMAP, NX, A/D, pages crossed).
#include <gtest/gtest.h>

#include <vector>

#include "testing/assist_test_env.h"
#include "vcpu/assist.h"
#include "vcpu/x86_arch.h"
#include "vcpu/x86_paging.h"

namespace evmm {
namespace {

using namespace assist_testing;
using x86::Vector;

// popcnt from memory: the result says which bytes were read.
void expect_popcnt(World& w, std::initializer_list<uint8_t> insn, uint64_t gpa, unsigned bytes) {
  for (unsigned i = 0; i < bytes; ++i) w.env.poke_le(gpa + i, 0x01, 1);
  auto r = w.run(insn);
  ASSERT_TRUE(r) << r.error().message();
  EXPECT_EQ(*r, AssistKind::Popcnt);
  EXPECT_EQ(w.cpu.regs.rax & 0xffff, bytes);
  for (unsigned i = 0; i < bytes; ++i) w.env.poke_le(gpa + i, 0, 1);
}

void expect_fault(World& w, std::initializer_list<uint8_t> insn, Vector v, uint32_t code,
                  std::optional<uint64_t> cr2 = std::nullopt) {
  CpuState before = w.cpu;
  auto r = w.run(insn);
  ASSERT_FALSE(r);
  ASSERT_TRUE(r.error().fault()) << r.error().message();
  EXPECT_EQ(r.error().fault()->vector, v) << r.error().message();
  EXPECT_EQ(r.error().fault()->error_code, code) << r.error().message();
  EXPECT_EQ(r.error().fault()->cr2, cr2) << r.error().message();
  EXPECT_EQ(std::memcmp(&before, &w.cpu, sizeof before), 0);
}

TEST(AssistMemory, SixtyFourBitForms) {
  World w;
  w.long_mode();
  w.cpu.regs.rbx = 0x5000;
  w.cpu.regs.rsi = 0x10;
  w.cpu.regs.r13 = 0x5100;
  w.cpu.regs.r9 = 0x3;
  expect_popcnt(w, {0xf3, 0x48, 0x0f, 0xb8, 0x03}, 0x5000, 8);                    // (%rbx)
  expect_popcnt(w, {0xf3, 0x0f, 0xb8, 0x43, 0x20}, 0x5020, 4);                    // disp8(%rbx)
  expect_popcnt(w, {0xf3, 0x0f, 0xb8, 0x83, 0x00, 0x01, 0x00, 0x00}, 0x5100, 4);  // disp32(%rbx)
  expect_popcnt(w, {0x66, 0xf3, 0x0f, 0xb8, 0x04, 0xb3}, 0x5040, 2);              // (%rbx,%rsi,4)
  expect_popcnt(w, {0xf3, 0x43, 0x0f, 0xb8, 0x44, 0xcd, 0x00}, 0x5118, 4);        // 0(%r13,%r9,8)
  expect_popcnt(w, {0xf3, 0x0f, 0xb8, 0x04, 0x25, 0x00, 0x60, 0x00, 0x00}, 0x6000, 4);  // absolute disp32
  // RIP-relative: from the next instruction's RIP.
  w.cpu.regs.rip = 0x4000;
  expect_popcnt(w, {0xf3, 0x0f, 0xb8, 0x05, 0x00, 0x10, 0x00, 0x00}, 0x4008 + 0x1000, 4);
  // 67: 32-bit addressing wraps at 4 GiB.
  w.cpu.regs.rbx = 0xffffffff00005000;
  expect_popcnt(w, {0x67, 0xf3, 0x0f, 0xb8, 0x03}, 0x5000, 4);
}

TEST(AssistMemory, FsAndGsBasesOnlyInSixtyFourBitMode) {
  World w;
  w.long_mode();
  w.cpu.regs.rbx = 0x100;
  w.cpu.sregs.fs.base = 0x7000;
  w.cpu.sregs.gs.base = 0x8000;
  w.cpu.sregs.ds.base = 0x9000;  // ignored in 64-bit mode
  expect_popcnt(w, {0x64, 0xf3, 0x0f, 0xb8, 0x03}, 0x7100, 4);
  expect_popcnt(w, {0x65, 0xf3, 0x0f, 0xb8, 0x03}, 0x8100, 4);
  expect_popcnt(w, {0x3e, 0xf3, 0x0f, 0xb8, 0x03}, 0x100, 4);
}

TEST(AssistMemory, NonCanonicalIsGpOrSsThroughSs) {
  World w;
  w.long_mode();
  w.cpu.regs.rbx = 0x0000800000000000;
  expect_fault(w, {0xf3, 0x0f, 0xb8, 0x03}, Vector::GP, 0);
  w.cpu.regs.rbp = 0x0000800000000000;
  expect_fault(w, {0xf3, 0x0f, 0xb8, 0x45, 0x00}, Vector::SS, 0);  // rbp base: SS
  w.cpu.regs.rbx = 0x00007ffffffffffe;                             // the last byte crosses
  expect_fault(w, {0xf3, 0x0f, 0xb8, 0x03}, Vector::GP, 0);
}

TEST(AssistMemory, ThirtyTwoBitSegmentsBasesAndLimits) {
  World w;
  w.protected_mode();
  w.cpu.regs.rbx = 0x100;
  w.cpu.regs.rsi = 0x2;
  w.cpu.sregs.es.base = 0x6000;
  expect_popcnt(w, {0x26, 0xf3, 0x0f, 0xb8, 0x04, 0x73}, 0x6104, 4);  // es:(%ebx,%esi,2)
  w.cpu.sregs.ds.limit = 0x102;
  expect_fault(w, {0xf3, 0x0f, 0xb8, 0x03}, Vector::GP, 0);  // 0x100..0x103 passes the limit
  w.cpu.sregs.ss.limit = 0xff;
  w.cpu.regs.rbp = 0x100;
  expect_fault(w, {0xf3, 0x0f, 0xb8, 0x45, 0x00}, Vector::SS, 0);
  // Expand-down: offsets above the limit are the valid ones.
  w.cpu.sregs.ds.limit = 0xfff;
  w.cpu.sregs.ds.type = 0x7;
  expect_fault(w, {0xf3, 0x0f, 0xb8, 0x03}, Vector::GP, 0);
  w.cpu.regs.rbx = 0x5000;
  expect_popcnt(w, {0xf3, 0x0f, 0xb8, 0x03}, 0x5000, 4);
  // A null segment is unusable.
  w.cpu.sregs.fs.unusable = 1;
  expect_fault(w, {0x64, 0xf3, 0x0f, 0xb8, 0x03}, Vector::GP, 0);
  // A code segment cannot be written: cmpxchg8b through cs.
  w.cpu.regs.rdi = 0x5000;
  expect_fault(w, {0x2e, 0x0f, 0xc7, 0x0f}, Vector::GP, 0);
}

TEST(AssistMemory, SixteenBitAddressing) {
  World w;
  w.real_mode();
  w.cpu.sregs.ds = w.cpu.sregs.ss;
  w.cpu.sregs.ds.base = 0x10000;
  w.cpu.sregs.ds.selector = 0x1000;
  w.cpu.regs.rbx = 0x1200;
  w.cpu.regs.rsi = 0x34;
  expect_popcnt(w, {0xf3, 0x0f, 0xb8, 0x00}, 0x11234, 2);        // (%bx,%si)
  expect_popcnt(w, {0xf3, 0x0f, 0xb8, 0x47, 0x10}, 0x11210, 2);  // 0x10(%bx)
  w.cpu.regs.rbx = 0xfff0;
  expect_popcnt(w, {0xf3, 0x0f, 0xb8, 0x47, 0x20}, 0x10010, 2);  // wraps at 64 KiB
  w.cpu.regs.rbp = 0x40;
  expect_popcnt(w, {0xf3, 0x0f, 0xb8, 0x46, 0x00}, 0x40, 2);     // bp base: SS (base 0)
  expect_fault(w, {0xf3, 0x0f, 0xb8, 0x06, 0xff, 0xff}, Vector::GP, 0);  // 0xffff+1 passes the limit
}

TEST(AssistMemory, PageWalkRightsAndFaults) {
  World w;
  w.long_mode();
  w.env.map_identity(0x1000, 0x10);
  w.env.map(0x20000, 0x30000, kPteP);               // read-only
  w.env.map(0x21000, 0x31000, kPteP | kPteW | kPteU);  // user
  w.cpu.regs.rdi = 0x20000;
  w.cpu.regs.rax = 1;  // not what memory holds: the compare fails, but the access is a write
  expect_fault(w, {0x0f, 0xc7, 0x0f}, Vector::PF, 0x3, 0x20000);  // P|W
  w.cpu.sregs.cr0 &= ~(1ull << 16);                                // without WP the supervisor writes
  ASSERT_TRUE(w.run({0x0f, 0xc7, 0x0f}));
  w.cpu.sregs.cr0 |= 1ull << 16;
  // A user page from CPL 0 with SMAP: #PF(P) unless RFLAGS.AC.
  w.cpu.sregs.cr4 |= 1ull << 21;
  w.cpu.regs.rbx = 0x21000;
  expect_fault(w, {0xf3, 0x0f, 0xb8, 0x03}, Vector::PF, 0x1, 0x21000);
  w.cpu.regs.rflags |= 1ull << 18;
  expect_popcnt(w, {0xf3, 0x0f, 0xb8, 0x03}, 0x31000, 4);
  // Not present: #PF(0) with CR2; reserved bits: #PF(P|RSVD).
  w.cpu.regs.rbx = 0x22000;
  expect_fault(w, {0xf3, 0x0f, 0xb8, 0x03}, Vector::PF, 0x0, 0x22000);
  w.env.map(0x22000, 0x32000 | (1ull << 50));
  expect_fault(w, {0xf3, 0x0f, 0xb8, 0x03}, Vector::PF, 0x9, 0x22000);
}

TEST(AssistMemory, AccessedAndDirty) {
  World w;
  w.long_mode();
  w.env.map_identity(0x1000, 0x10);
  w.env.map(0x40000, 0x40000);
  w.env.map(0x41000, 0x41000);
  w.cpu.regs.rbx = 0x40000;
  expect_popcnt(w, {0xf3, 0x0f, 0xb8, 0x03}, 0x40000, 4);
  EXPECT_EQ(w.env.peek_le(w.env.leaf_entry(0x40000), 8) & (kPteA | kPteD), kPteA);
  EXPECT_EQ(w.env.peek_le(kPml4, 8) & kPteA, kPteA);
  w.cpu.regs.rdi = 0x41000;
  ASSERT_TRUE(w.run({0x0f, 0xc7, 0x0f}));  // a write: dirty
  EXPECT_EQ(w.env.peek_le(w.env.leaf_entry(0x41000), 8) & (kPteA | kPteD), kPteA | kPteD);
}

TEST(AssistMemory, CrossingIntoAMissingPageFaultsOnItAndWritesNothing) {
  World w;
  w.long_mode();
  w.env.map_identity(0x1000, 0x10);
  w.env.map(0x50000, 0x50000);
  w.cpu.regs.rdi = 0x50ffc;  // cmpxchg8b across into 0x51000, unmapped
  w.env.poke_le(0x50ffc, 0, 4);
  w.cpu.regs.rax = w.cpu.regs.rdx = 0;
  w.cpu.regs.rbx = w.cpu.regs.rcx = 0xffffffff;
  expect_fault(w, {0x0f, 0xc7, 0x0f}, Vector::PF, 0x2, 0x51000);
  EXPECT_EQ(w.env.peek_le(0x50ffc, 4), 0u);
  w.env.map(0x51000, 0x60000);
  w.env.poke_le(0x60000, 0, 4);
  auto r = w.run({0x0f, 0xc7, 0x0f});
  ASSERT_TRUE(r) << r.error().message();
  EXPECT_EQ(w.env.peek_le(0x50ffc, 4), 0xffffffffu);
  EXPECT_EQ(w.env.peek_le(0x60000, 4), 0xffffffffu);
}

TEST(AssistMemory, CacheFlushesCheckTheAddressOnly) {
  World w;
  w.long_mode();
  w.env.map_identity(0x1000, 0x10);
  w.env.map(0x20000, 0x30000, kPteP);  // read-only is enough: a flush is a read
  w.cpu.regs.rdi = 0x20010;
  for (auto insn : {std::vector<uint8_t>{0x0f, 0xae, 0x3f}, {0x66, 0x0f, 0xae, 0x3f}, {0x66, 0x0f, 0xae, 0x37}}) {
    auto before = w.env.snapshot();
    auto r = complete_instruction(insn, w.cpu, w.env);
    ASSERT_TRUE(r) << r.error().message();
    EXPECT_EQ(w.env.snapshot(), before);
  }
  w.cpu.regs.rdi = 0x70000;
  expect_fault(w, {0x66, 0x0f, 0xae, 0x37}, Vector::PF, 0, 0x70000);
  w.cpu.regs.rdi = 0x0000900000000000;
  expect_fault(w, {0x0f, 0xae, 0x3f}, Vector::GP, 0);
}

TEST(AssistMemory, Invpcid) {
  World w;
  w.long_mode();
  w.cpu.regs.rdi = 0x5000;
  w.env.poke_le(0x5000, 0, 8);
  w.env.poke_le(0x5008, 0xffffffff81000000, 8);
  for (uint64_t type = 0; type < 4; ++type) {
    w.cpu.regs.rax = type;
    auto r = w.run({0x66, 0x0f, 0x38, 0x82, 0x07});
    ASSERT_TRUE(r) << r.error().message();
  }
  EXPECT_EQ(w.env.tlb_flushes, 4);
  w.cpu.regs.rax = 4;
  expect_fault(w, {0x66, 0x0f, 0x38, 0x82, 0x07}, Vector::GP, 0);
  w.cpu.regs.rax = 0;
  w.env.poke_le(0x5000, 1, 8);  // a PCID with CR4.PCIDE clear
  expect_fault(w, {0x66, 0x0f, 0x38, 0x82, 0x07}, Vector::GP, 0);
  w.cpu.sregs.cr4 |= 1ull << 17;
  EXPECT_TRUE(w.run({0x66, 0x0f, 0x38, 0x82, 0x07}));
  w.env.poke_le(0x5008, 0x0000800000000000, 8);  // type 0 needs a canonical address
  expect_fault(w, {0x66, 0x0f, 0x38, 0x82, 0x07}, Vector::GP, 0);
  w.cpu.regs.rax = 2;  // which the other types ignore
  EXPECT_TRUE(w.run({0x66, 0x0f, 0x38, 0x82, 0x07}));
  w.cpu.sregs.ss.dpl = 3;
  w.cpu.sregs.cs.selector |= 3;
  expect_fault(w, {0x66, 0x0f, 0x38, 0x82, 0x07}, Vector::GP, 0);
}

TEST(AssistMemory, Int1DeliversVectorOneWithExtInItsErrors) {
  World w;
  w.long_mode();
  w.gate64(1, 0xffffffff81000100, kSelCode64, 0x8e);
  auto r = w.run({0xf1});
  ASSERT_TRUE(r) << r.error().message();
  EXPECT_EQ(*r, AssistKind::Int1);
  EXPECT_EQ(w.cpu.regs.rip, 0xffffffff81000100u);
  EXPECT_EQ(w.env.peek_le(0x7fc8, 8), 0xffffffff81001001u);  // return address after f1
  w.long_mode();
  w.gate64(1, 0xffffffff81000100, kSelCode64, 0x0e);  // not present: #NP with EXT set
  expect_fault(w, {0xf1}, Vector::NP, (1u << 3) | 2 | 1);
  w.gate64(1, 0xffffffff81000100, kSelCode64NotPresent, 0x8e);  // the code segment is not present
  expect_fault(w, {0xf1}, Vector::NP, kSelCode64NotPresent | 1);
}

TEST(AssistMemory, ReadsCrossingAPageGoToBothPhysicalPages) {
  World w;
  w.long_mode();
  w.env.map(0x40000, 0x50000);
  w.env.map(0x41000, 0x20000);
  w.env.poke_le(0x50ffc, 0x0f0f0f0f, 4);
  w.env.poke_le(0x20000, 0x01010101, 4);
  w.cpu.regs.rbx = 0x40ffc;
  auto r = w.run({0xf3, 0x48, 0x0f, 0xb8, 0x03});
  ASSERT_TRUE(r) << r.error().message();
  EXPECT_EQ(w.cpu.regs.rax, 16u + 4u);
}

TEST(AssistMemory, FiveLevelPaging) {
  World w;
  w.long_mode();
  w.env.map(0x40000, 0x50000);
  w.cpu.sregs.cr4 |= 1ull << 12;
  w.cpu.sregs.cr3 = kPml5;
  w.cpu.regs.rbx = 0x40000;
  expect_popcnt(w, {0xf3, 0x0f, 0xb8, 0x03}, 0x50000, 4);
  w.cpu.regs.rbx = 0x0080000000000000;  // canonical with 57 bits only; PML5 entry 0x80 is empty
  expect_fault(w, {0xf3, 0x0f, 0xb8, 0x03}, Vector::PF, 0, 0x0080000000000000);
  w.cpu.sregs.cr4 &= ~(1ull << 12);
  w.cpu.sregs.cr3 = kPml4;
  expect_fault(w, {0xf3, 0x0f, 0xb8, 0x03}, Vector::GP, 0);  // not canonical with 48 bits
}

TEST(AssistMemory, FlushOfAPagesLastByteWalksOnlyThatPage) {
  World w;
  w.long_mode();
  w.env.map(0x40000, 0x50000);  // 0x41000 is not mapped
  w.cpu.regs.rdi = 0x40fff;
  auto r = w.run({0x0f, 0xae, 0x3f});
  EXPECT_TRUE(r) << r.error().message();
}

TEST(AssistMemory, CompatibilityModeUsesSegmentBasesAndWrapsAt4GiB) {
  World w;
  w.long_mode();
  w.cpu.sregs.cs = flat_segment(kSelCode32, 0xb, false, true);
  w.cpu.sregs.ds.base = 0x3000;
  w.cpu.regs.rbx = 0xffffffff00000100;  // only ebx counts
  expect_popcnt(w, {0xf3, 0x0f, 0xb8, 0x03}, 0x3100, 4);
  w.cpu.sregs.ds.base = 0xfffff000;
  w.cpu.regs.rbx = 0x2000;  // base + offset wraps to 0x1000
  expect_popcnt(w, {0xf3, 0x0f, 0xb8, 0x03}, 0x1000, 4);
}

TEST(AssistMemory, SixteenBitBaseIndexPairs) {
  World w;
  w.real_mode();
  w.cpu.sregs.ds = w.cpu.sregs.ss;
  w.cpu.regs.rbx = 0x100, w.cpu.regs.rbp = 0x200, w.cpu.regs.rsi = 0x10, w.cpu.regs.rdi = 0x20;
  expect_popcnt(w, {0xf3, 0x0f, 0xb8, 0x01}, 0x120, 2);  // (%bx,%di)
  expect_popcnt(w, {0xf3, 0x0f, 0xb8, 0x02}, 0x210, 2);  // (%bp,%si): ss
  expect_popcnt(w, {0xf3, 0x0f, 0xb8, 0x03}, 0x220, 2);  // (%bp,%di)
  expect_popcnt(w, {0xf3, 0x0f, 0xb8, 0x04}, 0x010, 2);  // (%si)
  expect_popcnt(w, {0x66, 0x67, 0xf3, 0x0f, 0xb8, 0x03}, 0x100, 4);  // 32-bit operand and address: (%ebx)
}

// Interrupt frames are implicit supervisor writes: a read-only stack page faults with CR0.WP, and
// a user stack page faults under SMAP even with RFLAGS.AC (SDM vol. 3 4.6.1).
TEST(AssistMemory, InterruptFramesAreImplicitSupervisorWrites) {
  World w;
  w.long_mode();
  w.gate64(3, 0xffffffff81000100, kSelCode64, 0x8e);
  w.env.map_identity(0x1000, 3);
  w.env.map(0x7000, 0x7000, kPteP);  // the stack, read-only
  expect_fault(w, {0xcc}, Vector::PF, 0x3, 0x7ff0 - 8);
  w.env.map(0x7000, 0x7000, kPteP | kPteW | kPteU);  // now a user page
  w.cpu.sregs.cr4 |= 1ull << 21;
  w.cpu.regs.rflags |= 1ull << 18;
  expect_fault(w, {0xcc}, Vector::PF, 0x3, 0x7ff0 - 8);
  w.cpu.sregs.cr4 &= ~(1ull << 21);
  auto r = w.run({0xcc});
  EXPECT_TRUE(r) << r.error().message();
}

TEST(AssistMemory, Cmpxchg8bInProtectedModeThroughASegmentBase) {
  World w;
  w.protected_mode();
  w.cpu.sregs.es.base = 0x20000;
  w.cpu.regs.rdi = 0x100;
  w.env.poke_le(0x20100, 0x1111111122222222, 8);
  w.cpu.regs.rax = 0x22222222, w.cpu.regs.rdx = 0x11111111;
  w.cpu.regs.rbx = 0x44444444, w.cpu.regs.rcx = 0x33333333;
  auto r = w.run({0x26, 0xf0, 0x0f, 0xc7, 0x0f});  // lock cmpxchg8b %es:(%edi)
  ASSERT_TRUE(r) << r.error().message();
  EXPECT_EQ(w.env.peek_le(0x20100, 8), 0x3333333344444444u);
  EXPECT_TRUE(w.cpu.regs.rflags & (1u << 6));
  r = w.run({0x26, 0x0f, 0xc7, 0x0f});  // now the compare fails and loads edx:eax
  ASSERT_TRUE(r) << r.error().message();
  EXPECT_FALSE(w.cpu.regs.rflags & (1u << 6));
  EXPECT_EQ(w.cpu.regs.rax, 0x44444444u);
  EXPECT_EQ(w.cpu.regs.rdx, 0x33333333u);
}

// The walk's user-mode rules (SDM vol. 3 4.6.1), which no CPL 0 assist reaches.
TEST(AssistMemory, UserModeWalks) {
  World w;
  w.long_mode();
  w.env.map(0x40000, 0x50000);                        // supervisor
  w.env.map(0x41000, 0x51000, kPteP | kPteU);         // user, read-only
  w.env.map(0x42000, 0x52000, kPteP | kPteW | kPteU);  // user, writable
  x86::PagingContext user = x86::PagingContext::from(w.cpu.regs, w.cpu.sregs, false, 46);
  user.user = true;
  auto fault_code = [&](uint64_t linear, x86::AccessType a) -> int64_t {
    auto r = x86::walk(w.env.memory(), user, linear, a);
    if (r) return -1;
    return r.error().fault() ? r.error().fault()->error_code.value_or(99) : 99;
  };
  EXPECT_EQ(fault_code(0x40000, x86::AccessType::Read), 0x5);   // P|U
  EXPECT_EQ(fault_code(0x41000, x86::AccessType::Read), -1);
  EXPECT_EQ(fault_code(0x41000, x86::AccessType::Write), 0x7);  // P|W|U
  EXPECT_EQ(fault_code(0x42000, x86::AccessType::Write), -1);
  EXPECT_EQ(fault_code(0x43000, x86::AccessType::Read), 0x4);   // not present, U
  // NX with EFER.NXE: a fetch faults with I/D.
  w.env.map(0x44000, 0x54000, kPteP | kPteU | (1ull << 63));
  EXPECT_EQ(fault_code(0x44000, x86::AccessType::Fetch), 0x15);  // P|U|I/D
  user.efer &= ~(1ull << 11);  // without NXE bit 63 is reserved
  EXPECT_EQ(fault_code(0x44000, x86::AccessType::Read), 0xd);    // P|U|RSVD
}

}  // namespace
}  // namespace evmm
