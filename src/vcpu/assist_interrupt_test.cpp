// int3 and int n through the guest's IDT or IVT: frames, flags, CS reload, and the faults the
// CPU would raise, which come back as errors with nothing changed.
#include <gtest/gtest.h>

#include <cstring>

#include "vcpu/assist.h"
#include "testing/assist_test_env.h"

namespace evmm {
namespace {

using namespace assist_testing;

constexpr uint64_t kTF = 1 << 8, kNT = 1 << 14, kRF = 1 << 16, kVM = 1 << 17, kAC = 1 << 18;

bool same_cpu(const CpuState& a, const CpuState& b) { return std::memcmp(&a, &b, sizeof a) == 0; }

// Runs insn expecting an error with `code` whose message contains `text`, and checks that neither
// the registers nor guest memory changed.
void expect_refused(World& w, std::initializer_list<uint8_t> insn, int code, const std::string& text) {
  CpuState before = w.cpu;
  auto memory_before = w.env.snapshot();
  auto r = w.run(insn);
  ASSERT_FALSE(r) << "succeeded as " << to_string(*r);
  EXPECT_EQ(r.error().code(), code) << r.error().message();
  EXPECT_NE(r.error().message().find(text), std::string::npos) << r.error().message();
  EXPECT_TRUE(same_cpu(before, w.cpu));
  EXPECT_TRUE(memory_before == w.env.snapshot());
}

void expect_cs(const kvm_segment& cs, uint16_t selector, uint64_t base, uint32_t limit, bool l, bool db, bool g) {
  EXPECT_EQ(cs.selector, selector);
  EXPECT_EQ(cs.base, base);
  EXPECT_EQ(cs.limit, limit);
  EXPECT_EQ(cs.type, 0xb);
  EXPECT_EQ(cs.present, 1);
  EXPECT_EQ(cs.dpl, 0);
  EXPECT_EQ(cs.s, 1);
  EXPECT_EQ(cs.l, l);
  EXPECT_EQ(cs.db, db);
  EXPECT_EQ(cs.g, g);
  EXPECT_EQ(cs.avl, 0);
  EXPECT_EQ(cs.unusable, 0);
}

TEST(AssistInterrupt, Int3LongModeInterruptGate) {
  World w;
  w.long_mode();
  w.cpu.regs.rflags = 0x202 | kTF | kNT | kRF | kAC | 1;  // CF too
  w.cpu.regs.rax = 0x1111;
  w.cpu.sregs.cs.avl = 1;  // stale cache bits must not survive the reload
  // The gate bytes as Linux builds them: handler 0xffffffff81a00b40, selector 0x08, P DPL0 type E.
  w.env.poke(World::kIdt + 3 * 16, {0x40, 0x0b, 0x08, 0x00, 0x00, 0x8e, 0xa0, 0x81, 0xff, 0xff, 0xff, 0xff, 0, 0, 0, 0});
  w.env.poke_le(0x7ff0, 0x5a5a5a5a5a5a5a5a, 8);  // just above the aligned frame
  w.env.poke_le(0x7fc0, 0xa5a5a5a5a5a5a5a5, 8);  // just below it

  auto r = w.run({0xcc});  // int3
  ASSERT_TRUE(r) << r.error().message();
  EXPECT_EQ(*r, AssistKind::Int3);
  // RSP 0x7ff8 is aligned down to 0x7ff0 first; five qwords below it.
  EXPECT_EQ(w.env.peek_le(0x7fe8, 8), kSelData);                 // SS
  EXPECT_EQ(w.env.peek_le(0x7fe0, 8), 0x7ff8u);                  // old RSP, unaligned
  EXPECT_EQ(w.env.peek_le(0x7fd8, 8), 0x202 | kTF | kNT | kRF | kAC | 1);  // RFLAGS as they were
  EXPECT_EQ(w.env.peek_le(0x7fd0, 8), kSelCode64Current);        // CS
  EXPECT_EQ(w.env.peek_le(0x7fc8, 8), 0xffffffff81001001u);      // RIP of the next instruction
  EXPECT_EQ(w.env.peek_le(0x7ff0, 8), 0x5a5a5a5a5a5a5a5au);
  EXPECT_EQ(w.env.peek_le(0x7fc0, 8), 0xa5a5a5a5a5a5a5a5u);
  EXPECT_EQ(w.cpu.regs.rsp, 0x7fc8u);
  EXPECT_EQ(w.cpu.regs.rip, 0xffffffff81a00b40u);
  EXPECT_EQ(w.cpu.regs.rflags, 0x2u | kAC | 1);  // IF, TF, NT, RF cleared
  EXPECT_EQ(w.cpu.regs.rax, 0x1111u);
  expect_cs(w.cpu.sregs.cs, kSelCode64, 0, 0xffffffff, true, false, true);
  EXPECT_EQ(w.cpu.sregs.ss.selector, kSelData);
}

TEST(AssistInterrupt, IntNTrapGateKeepsIf) {
  World w;
  w.long_mode();
  w.cpu.regs.rsp = 0x8000;
  w.gate64(0x80, 0xffffffff81000100, kSelCode64, 0x8f);
  auto r = w.run({0xcd, 0x80});  // int $0x80
  ASSERT_TRUE(r) << r.error().message();
  EXPECT_EQ(*r, AssistKind::IntN);
  EXPECT_EQ(w.cpu.regs.rsp, 0x7fd8u);
  EXPECT_EQ(w.env.peek_le(0x7fd8, 8), 0xffffffff81001002u);
  EXPECT_EQ(w.env.peek_le(0x7fe0, 8), kSelCode64Current);
  EXPECT_EQ(w.env.peek_le(0x7fe8, 8), 0x202u);
  EXPECT_EQ(w.env.peek_le(0x7ff0, 8), 0x8000u);
  EXPECT_EQ(w.env.peek_le(0x7ff8, 8), kSelData);
  EXPECT_EQ(w.cpu.regs.rip, 0xffffffff81000100u);
  EXPECT_EQ(w.cpu.regs.rflags, 0x202u);
}

TEST(AssistInterrupt, PrefixesCountInTheReturnAddress) {
  World w;
  w.long_mode();
  w.gate64(3, 0xffffffff81000100, kSelCode64, 0x8e);
  ASSERT_TRUE(w.run({0x2e, 0x66, 0xcc}));  // cs data16 int3
  EXPECT_EQ(w.env.peek_le(0x7fc8, 8), 0xffffffff81001003u);
}

TEST(AssistInterrupt, IstSwitchesStack) {
  World w;
  w.long_mode();
  w.gate64(0x12, 0xffffffff81000200, kSelCode64, 0x8e, 3);
  w.env.poke_le(World::kTss + 36 + 2 * 8, 0x6008, 8);  // IST3, not 16-byte aligned
  auto r = w.run({0xcd, 0x12});
  ASSERT_TRUE(r) << r.error().message();
  EXPECT_EQ(w.cpu.regs.rsp, 0x6000u - 40);
  EXPECT_EQ(w.env.peek_le(0x6000 - 8, 8), kSelData);
  EXPECT_EQ(w.env.peek_le(0x6000 - 16, 8), 0x7ff8u);  // the interrupted stack
  EXPECT_EQ(w.env.peek_le(0x6000 - 40, 8), 0xffffffff81001002u);
  EXPECT_EQ(w.env.peek_le(0x7fc8, 8), 0u);  // nothing on the old stack
}

TEST(AssistInterrupt, IstNeedsA64BitTssWithinItsLimit) {
  World w;
  w.long_mode();
  w.gate64(0x12, 0xffffffff81000200, kSelCode64, 0x8e, 7);
  w.cpu.sregs.tr.limit = 0x58;  // IST7 is bytes 84..91
  expect_refused(w, {0xcd, 0x12}, EINVAL, "TSS limit");
  w.cpu.sregs.tr.limit = 0x5b;
  w.env.poke_le(World::kTss + 84, 0x6000, 8);
  EXPECT_TRUE(w.run({0xcd, 0x12}));
  w.long_mode();
  w.cpu.sregs.tr.type = 0x3;  // a 16-bit busy TSS
  expect_refused(w, {0xcd, 0x12}, EINVAL, "TSS");
}

TEST(AssistInterrupt, CompatibilityModeUsesTheLongModeIdtAndLoadsA64BitCs) {
  World w;
  w.long_mode();
  w.cpu.sregs.cs = flat_segment(kSelCode32, 0xb, false, true);
  w.cpu.regs.rip = 0x1000;
  w.cpu.regs.rsp = 0x9004;
  w.gate64(3, 0xffffffff81000300, kSelCode64, 0x8e);
  auto r = w.run({0xcc});
  ASSERT_TRUE(r) << r.error().message();
  EXPECT_EQ(w.cpu.regs.rsp, 0x9000u - 40);
  EXPECT_EQ(w.env.peek_le(0x9000 - 40, 8), 0x1001u);
  EXPECT_EQ(w.env.peek_le(0x9000 - 32, 8), kSelCode32);
  EXPECT_EQ(w.env.peek_le(0x9000 - 16, 8), 0x9004u);
  expect_cs(w.cpu.sregs.cs, kSelCode64, 0, 0xffffffff, true, false, true);
}

TEST(AssistInterrupt, LoadingCsSetsTheAccessedBit) {
  World w;
  w.long_mode();
  w.gate64(3, 0xffffffff81000100, kSelCode64Unaccessed, 0x8e);
  ASSERT_EQ(w.env.peek_le(World::kGdt + kSelCode64Unaccessed + 5, 1), 0x9au);
  ASSERT_TRUE(w.run({0xcc}));
  EXPECT_EQ(w.cpu.sregs.cs.type, 0xb);
  EXPECT_EQ(w.env.peek_le(World::kGdt + kSelCode64Unaccessed + 5, 1), 0x9bu);
}

TEST(AssistInterrupt, FrameCrossingAPageGoesToBothPhysicalPages) {
  World w;
  w.long_mode();
  w.env.map_identity(0x1000, 3);                // GDT, IDT, TSS
  w.env.map(0xffffc90000007000, 0x30000);       // the stack's two pages, far apart and out of order
  w.env.map(0xffffc90000008000, 0x12000);
  w.cpu.regs.rsp = 0xffffc90000008018;          // aligned to ...8010: frame ...7fe8 to ...800f
  w.gate64(3, 0xffffffff81000100, kSelCode64, 0x8e);
  auto r = w.run({0xcc});
  ASSERT_TRUE(r) << r.error().message();
  EXPECT_EQ(w.cpu.regs.rsp, 0xffffc90000007fe8u);
  EXPECT_EQ(w.env.peek_le(0x30fe8, 8), 0xffffffff81001001u);  // RIP
  EXPECT_EQ(w.env.peek_le(0x30ff0, 8), kSelCode64Current);    // CS
  EXPECT_EQ(w.env.peek_le(0x30ff8, 8), 0x202u);               // RFLAGS
  EXPECT_EQ(w.env.peek_le(0x12000, 8), 0xffffc90000008018u);  // RSP
  EXPECT_EQ(w.env.peek_le(0x12008, 8), kSelData);             // SS
  EXPECT_EQ(w.env.peek_le(0x31000, 8), 0u);                   // not written contiguously
}

// This host's KVM refuses paging outside long mode, so the walker does not do 32-bit paging.
TEST(AssistInterrupt, ProtectedModePagingIsRefused) {
  World w;
  w.protected_mode();
  w.cpu.sregs.cr0 |= 0x80000000;
  w.gate32(0x21, 0x00101000, kSelCode32, 0x8e);
  expect_refused(w, {0xcd, 0x21}, EOPNOTSUPP, "32-bit and PAE paging");
}

TEST(AssistInterrupt, UnmappedStackPageChangesNothing) {
  World w;
  w.long_mode();
  w.env.map_identity(0x1000, 3);
  w.env.map(0xffffc90000008000, 0x12000);  // ...7000 is not mapped
  w.cpu.regs.rsp = 0xffffc90000008018;
  w.gate64(3, 0xffffffff81000100, kSelCode64, 0x8e);
  // SS and RSP would fit on the mapped page; they must not be written either.
  expect_refused(w, {0xcc}, EFAULT, "0xffffc90000007ff8");
  w.cpu.regs.rsp = 0xffffc90000006018;
  expect_refused(w, {0xcc}, EFAULT, "not present");
}

TEST(AssistInterrupt, UnmappedIdtOrGdtIsEfault) {
  World w;
  w.long_mode();
  w.env.map_identity(0x7000, 2);  // stack only
  w.gate64(3, 0xffffffff81000100, kSelCode64, 0x8e);
  expect_refused(w, {0xcc}, EFAULT, "IDT entry 0x3");
  w.env.map_identity(0x2000, 1);  // now the IDT, still no GDT
  expect_refused(w, {0xcc}, EFAULT, "descriptor of selector 0x8");
  w.env.map_identity(0x1000, 1);
  EXPECT_TRUE(w.run({0xcc}));
}

TEST(AssistInterrupt, VectorBeyondIdtLimit) {
  World w;
  w.long_mode();
  w.gate64(0x80, 0xffffffff81000100, kSelCode64, 0x8e);
  w.cpu.sregs.idt.limit = 0x80 * 16 - 1;
  expect_refused(w, {0xcd, 0x80}, EINVAL, "vector 0x80 is beyond the IDT limit");
  w.cpu.sregs.idt.limit = 0x80 * 16 + 14;  // one byte short of the whole gate
  expect_refused(w, {0xcd, 0x80}, EINVAL, "vector 0x80");
  w.cpu.sregs.idt.limit = 0x80 * 16 + 15;
  EXPECT_TRUE(w.run({0xcd, 0x80}));
}

TEST(AssistInterrupt, NotPresentGate) {
  World w;
  w.long_mode();
  w.gate64(0x80, 0xffffffff81000100, kSelCode64, 0x0e);
  expect_refused(w, {0xcd, 0x80}, EINVAL, "not present");
}

TEST(AssistInterrupt, BadGateTypes) {
  World w;
  w.long_mode();
  // Call gate, 286 interrupt gate, task gate (none exist as IDT gates in IA-32e mode), and a
  // code-segment-looking entry with the S bit set.
  for (uint8_t attr : {0x8c, 0x86, 0x85, 0x9e, 0x80}) {
    SCOPED_TRACE(attr);
    w.gate64(0x80, 0xffffffff81000100, kSelCode64, attr);
    expect_refused(w, {0xcd, 0x80}, EINVAL, "IDT entry 0x80 has type");
  }
  // The upper half's type field must be zero.
  w.gate64(0x80, 0xffffffff81000100, kSelCode64, 0x8e);
  w.env.poke(World::kIdt + 0x80 * 16 + 13, {0x0e});
  expect_refused(w, {0xcd, 0x80}, EINVAL, "type");

  w.protected_mode();
  w.gate32(0x80, 0x1000, kSelCode32, 0x8c);
  expect_refused(w, {0xcd, 0x80}, EINVAL, "not an interrupt or trap gate");
  w.gate32(0x80, 0x1000, kSelCode32, 0x85);
  expect_refused(w, {0xcd, 0x80}, EOPNOTSUPP, "task gate");
}

TEST(AssistInterrupt, BadCodeSegments) {
  World w;
  w.long_mode();
  struct Case {
    uint16_t selector;
    const char* text;
  };
  for (auto [selector, text] : {Case{0x0000, "null"}, Case{0x0003, "null"}, Case{kSelData, "not a code segment"},
                                Case{kSelCode32, "not a 64-bit code segment"}, Case{kSelCode64Dpl3, "DPL 3"},
                                Case{kSelCode64NotPresent, "not present"}, Case{0x0080, "beyond the GDT limit"},
                                Case{0x000c, "LDT"}}) {
    SCOPED_TRACE(selector);
    w.gate64(3, 0xffffffff81000100, selector, 0x8e);
    expect_refused(w, {0xcc}, EINVAL, text);
  }
}

TEST(AssistInterrupt, NonCanonicalHandler) {
  World w;
  w.long_mode();
  w.gate64(3, 0x0000800000000000, kSelCode64, 0x8e);
  expect_refused(w, {0xcc}, EINVAL, "not canonical");
  w.cpu.sregs.cr4 |= 1 << 12;  // LA57 makes it canonical
  w.cpu.sregs.cr3 = kPml5;
  EXPECT_TRUE(w.run({0xcc}));
}

TEST(AssistInterrupt, NonCanonicalStack) {
  World w;
  w.long_mode();
  w.gate64(3, 0xffffffff81000100, kSelCode64, 0x8e);
  w.cpu.regs.rsp = 0x0000800000000010;  // the frame would sit just below the hole... on its far side
  expect_refused(w, {0xcc}, EINVAL, "not canonical");
}

TEST(AssistInterrupt, Cpl3IsRefused) {
  World w;
  w.long_mode();
  w.cpu.sregs.cs.selector = 0x33;
  w.cpu.sregs.ss.selector = 0x2b;
  w.cpu.sregs.ss.dpl = 3;
  w.gate64(0x80, 0xffffffff81000100, kSelCode64, 0xee);  // DPL 3: allowed from user mode
  expect_refused(w, {0xcd, 0x80}, EOPNOTSUPP, "CPL 3");
  w.gate64(0x80, 0xffffffff81000100, kSelCode64, 0x8e);  // DPL 0: the CPU would raise #GP
  expect_refused(w, {0xcd, 0x80}, EINVAL, "below CPL 3");
  // KVM reports the CPL in SS.DPL; a CS.RPL of 0 does not hide it.
  w.cpu.sregs.cs.selector = kSelCode64Current;
  expect_refused(w, {0xcd, 0x80}, EINVAL, "below CPL 3");
}

TEST(AssistInterrupt, ProtectedMode32BitInterruptGate) {
  World w;
  w.protected_mode();
  w.cpu.regs.rflags = 0x202 | kTF | kAC;
  w.gate32(0x21, 0x00101000, kSelCode32, 0x8e);
  auto r = w.run({0xcd, 0x21});  // int $0x21
  ASSERT_TRUE(r) << r.error().message();
  EXPECT_EQ(w.cpu.regs.rsp, 0x8ff4u);
  EXPECT_EQ(w.env.peek_le(0x8ffc, 4), 0x202 | kTF | kAC);
  EXPECT_EQ(w.env.peek_le(0x8ff8, 4), kSelCode32);
  EXPECT_EQ(w.env.peek_le(0x8ff4, 4), 0x1002u);
  EXPECT_EQ(w.env.peek_le(0x8ff0, 4), 0u);
  EXPECT_EQ(w.cpu.regs.rip, 0x101000u);
  EXPECT_EQ(w.cpu.regs.rflags, 0x2 | kAC);  // AC survives outside real mode
  expect_cs(w.cpu.sregs.cs, kSelCode32, 0, 0xffffffff, false, true, true);
}

TEST(AssistInterrupt, ProtectedModeTrapGateLoadsCsBaseAndChecksItsLimit) {
  World w;
  w.protected_mode();
  w.gate32(0x21, 0x1800, kSelCode32Based, 0x8f);
  auto r = w.run({0xcd, 0x21});
  ASSERT_TRUE(r) << r.error().message();
  EXPECT_EQ(w.cpu.regs.rflags, 0x202u);
  EXPECT_EQ(w.cpu.regs.rip, 0x1800u);
  expect_cs(w.cpu.sregs.cs, kSelCode32Based, 0x12345678, 0x1fff, false, true, false);

  w.protected_mode();
  w.gate32(0x21, 0x2000, kSelCode32Based, 0x8f);
  expect_refused(w, {0xcd, 0x21}, EINVAL, "beyond the code segment limit");
}

TEST(AssistInterrupt, ProtectedMode16BitGatePushesWords) {
  World w;
  w.protected_mode();
  w.cpu.regs.rflags = 0x40202;  // AC: above the pushed 16 bits
  w.gate32(0x21, 0x00101234, kSelCode32, 0x86);  // 286 interrupt gate: the offset's top half is reserved
  auto r = w.run({0xcd, 0x21});
  ASSERT_TRUE(r) << r.error().message();
  EXPECT_EQ(w.cpu.regs.rsp, 0x8ffau);
  EXPECT_EQ(w.env.peek_le(0x8ffe, 2), 0x202u);
  EXPECT_EQ(w.env.peek_le(0x8ffc, 2), kSelCode32);
  EXPECT_EQ(w.env.peek_le(0x8ffa, 2), 0x1002u);
  EXPECT_EQ(w.env.peek_le(0x8ff8, 2), 0u);
  EXPECT_EQ(w.cpu.regs.rip, 0x1234u);
  EXPECT_EQ(w.cpu.regs.rflags, 0x40002u);
}

TEST(AssistInterrupt, ProtectedModeStackSegmentLimits) {
  World w;
  w.protected_mode();
  w.gate32(0x21, 0x1000, kSelCode32, 0x8e);
  // Expand-up, byte granular: the first push (0x1000..0x1003) ends past the limit.
  w.cpu.sregs.ss.g = 0;
  w.cpu.sregs.ss.limit = 0x1002;
  w.cpu.regs.rsp = 0x1004;
  expect_refused(w, {0xcd, 0x21}, EINVAL, "outside the stack segment");
  w.cpu.sregs.ss.limit = 0x1003;
  EXPECT_TRUE(w.run({0xcd, 0x21}));

  // Expand-down: valid offsets are above the limit; the second push lands on it.
  w.protected_mode();
  w.cpu.sregs.ss.type = 0x7;
  w.cpu.sregs.ss.limit = 0x8ff8;
  expect_refused(w, {0xcd, 0x21}, EINVAL, "outside the stack segment");
  w.cpu.sregs.ss.limit = 0x8ff3;
  EXPECT_TRUE(w.run({0xcd, 0x21}));
}

TEST(AssistInterrupt, ProtectedMode16BitStackWrapsSp) {
  World w;
  w.protected_mode();
  w.cpu.sregs.ss.db = 0;
  w.cpu.sregs.ss.g = 0;
  w.cpu.sregs.ss.limit = 0xffff;
  w.cpu.sregs.ss.base = 0x20000;
  w.cpu.regs.rsp = 0x12340004;  // SP 4: EFLAGS at 0, then SP wraps to 0xfffc
  w.gate32(0x21, 0x1000, kSelCode32, 0x8e);
  auto r = w.run({0xcd, 0x21});
  ASSERT_TRUE(r) << r.error().message();
  EXPECT_EQ(w.cpu.regs.rsp, 0x1234fff8u);  // ESP's upper half is not part of SP
  EXPECT_EQ(w.env.peek_le(0x20000, 4), 0x202u);
  EXPECT_EQ(w.env.peek_le(0x2fffc, 4), kSelCode32);
  EXPECT_EQ(w.env.peek_le(0x2fff8, 4), 0x1002u);
}

TEST(AssistInterrupt, Virtual8086ModeIsRefused) {
  World w;
  w.protected_mode();
  w.cpu.regs.rflags |= kVM;
  w.gate32(0x21, 0x1000, kSelCode32, 0xee);
  expect_refused(w, {0xcd, 0x21}, EOPNOTSUPP, "virtual-8086");
}

TEST(AssistInterrupt, RealModeThroughTheIvt) {
  World w;
  w.real_mode();
  w.cpu.regs.rflags = 0x202 | kTF | kAC | 0x80;  // SF too
  w.env.poke(0x10 * 4, {0x34, 0x12, 0x00, 0xc0});  // IVT[0x10] = c000:1234
  auto r = w.run({0xcd, 0x10});                    // int $0x10
  ASSERT_TRUE(r) << r.error().message();
  EXPECT_EQ(*r, AssistKind::IntN);
  EXPECT_EQ(w.env.peek_le(0x6ffe, 2), 0x282u | kTF);  // FLAGS: the low 16 bits
  EXPECT_EQ(w.env.peek_le(0x6ffc, 2), 0xf000u);
  EXPECT_EQ(w.env.peek_le(0x6ffa, 2), 0x102u);
  EXPECT_EQ(w.env.peek_le(0x6ff8, 2), 0u);
  EXPECT_EQ(w.cpu.regs.rsp, 0x6ffau);
  EXPECT_EQ(w.cpu.regs.rip, 0x1234u);
  EXPECT_EQ(w.cpu.regs.rflags, 0x82u);  // IF, TF and AC cleared
  EXPECT_EQ(w.cpu.sregs.cs.selector, 0xc000);
  EXPECT_EQ(w.cpu.sregs.cs.base, 0xc0000u);
  EXPECT_EQ(w.cpu.sregs.cs.limit, 0xffffu);
}

TEST(AssistInterrupt, RealModeStackWrapAndFault) {
  World w;
  w.real_mode();
  w.env.poke(3 * 4, {0x00, 0x01, 0x00, 0x20});  // IVT[3] = 2000:0100
  w.cpu.sregs.ss.base = 0x20000;
  w.cpu.sregs.ss.selector = 0x2000;
  w.cpu.regs.rsp = 0x2;
  auto r = w.run({0xcc});
  ASSERT_TRUE(r) << r.error().message();
  EXPECT_EQ(w.env.peek_le(0x20000, 2), 0x202u);
  EXPECT_EQ(w.env.peek_le(0x2fffe, 2), 0xf000u);
  EXPECT_EQ(w.env.peek_le(0x2fffc, 2), 0x101u);
  EXPECT_EQ(w.cpu.regs.rsp, 0xfffcu);
  EXPECT_EQ(w.cpu.sregs.cs.base, 0x20000u);

  w.real_mode();
  w.cpu.regs.rsp = 0x1;  // FLAGS would straddle offset 0xffff
  expect_refused(w, {0xcc}, EINVAL, "outside the stack segment");
  w.cpu.regs.rsp = 0x7000;
  w.cpu.sregs.idt.limit = 0x42;  // IVT[0x10] is bytes 0x40..0x43
  expect_refused(w, {0xcd, 0x10}, EINVAL, "vector 0x10 is beyond the IVT limit");
  w.cpu.sregs.idt.limit = 0x43;
  EXPECT_TRUE(w.run({0xcd, 0x10}));
}

}  // namespace
}  // namespace evmm
