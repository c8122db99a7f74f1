// iret and iretd in protected mode (cf, 66 cf): the frames they pop, the EFLAGS they load, the
// segment caches they leave, and every check with the fault the CPU would raise (SDM vol. 2 IRET).
#include <gtest/gtest.h>

#include <cstring>
#include <optional>

#include "testing/assist_test_env.h"
#include "vcpu/assist.h"

namespace evmm {
namespace {

using namespace assist_testing;
using x86::Vector;

constexpr uint64_t kIF = 1 << 9, kIOPL3 = 3 << 12, kNT = 1 << 14, kRF = 1 << 16, kVM = 1 << 17, kAC = 1 << 18,
                   kVIF = 1 << 19, kVIP = 1 << 20, kID = 1 << 21;
// The arithmetic flags and TF, DF: every iret loads them.
constexpr uint64_t kArith = 0x8d5 | (1 << 8) | (1 << 10);

// More GDT entries than World writes (raw, SDM vol. 3 figure 3-8), at selectors above its own.
constexpr uint64_t kUserCode = 0x00cffa000000ffff;        // 32-bit code, DPL 3, not accessed
constexpr uint64_t kUserData = 0x00cff2000000ffff;        // writable data, DPL 3, not accessed
constexpr uint64_t kUserData16 = 0x0000f2000000ffff;      // writable data, DPL 3, B=0, 64 KiB
constexpr uint64_t kUserReadOnly = 0x00cff0000000ffff;    // read-only data, DPL 3
constexpr uint64_t kUserDataNotPresent = 0x00cf72000000ffff;
constexpr uint64_t kConforming0 = 0x00cf9f000000ffff;     // conforming code, DPL 0
constexpr uint64_t kConforming3 = 0x00cfff000000ffff;     // conforming code, DPL 3
constexpr uint64_t kCode32NotPresent = 0x00cf1b000000ffff;
constexpr uint64_t kCode16 = 0x00009a010000ffff;          // 16-bit code at 0x10000, 64 KiB, not accessed
constexpr uint64_t kTss32 = 0x000089003000ffff;           // a system descriptor: not a code segment
constexpr uint64_t kData0Unaccessed = 0x00cf92000000ffff;

enum : uint16_t {
  kSelUserCode = 0x50, kSelUserData = 0x58, kSelUserData16 = 0x60, kSelUserReadOnly = 0x68,
  kSelUserDataNotPresent = 0x70, kSelConforming0 = 0x78, kSelConforming3 = 0x80, kSelCode32NotPresent = 0x88,
  kSelCode16 = 0x90, kSelTss = 0x98, kSelData0Unaccessed = 0xa0, kGdtLimit = 0xa7,
};

constexpr uint64_t kStack = 0x9000;
constexpr uint64_t kLdt = 0x4000;

bool same_cpu(const CpuState& a, const CpuState& b) { return std::memcmp(&a, &b, sizeof a) == 0; }

struct IretWorld : World {
  IretWorld() {
    for (auto [sel, desc] : std::initializer_list<std::pair<uint16_t, uint64_t>>{
             {kSelUserCode, kUserCode}, {kSelUserData, kUserData}, {kSelUserData16, kUserData16},
             {kSelUserReadOnly, kUserReadOnly}, {kSelUserDataNotPresent, kUserDataNotPresent},
             {kSelConforming0, kConforming0}, {kSelConforming3, kConforming3},
             {kSelCode32NotPresent, kCode32NotPresent}, {kSelCode16, kCode16}, {kSelTss, kTss32},
             {kSelData0Unaccessed, kData0Unaccessed}})
      env.poke_le(kGdt + sel, desc, 8);
    protected_mode();
    cpu.sregs.gdt.limit = kGdtLimit;
    cpu.regs.rsp = kStack;
  }
  // Writes a frame of `width`-byte slots at the stack pointer, first slot lowest.
  void frame(std::initializer_list<uint64_t> slots, unsigned width = 4) {
    uint64_t at = cpu.sregs.ss.base + (cpu.regs.rsp & 0xffffffff);
    for (uint64_t v : slots) {
      env.poke_le(at, v, width);
      at += width;
    }
  }
  // Running at CPL 3 with flat DPL 3 segments (as after an outer return).
  void at_cpl3() {
    cpu.sregs.cs = flat_segment(kSelUserCode | 3, 0xb, false, true);
    cpu.sregs.cs.dpl = 3;
    cpu.sregs.ss = flat_segment(kSelUserData | 3, 0x3, false, true);
    cpu.sregs.ss.dpl = 3;
  }
};

void expect_fault(IretWorld& w, std::initializer_list<uint8_t> insn, Vector vector, uint32_t error_code) {
  CpuState before = w.cpu;
  auto memory_before = w.env.snapshot();
  auto r = w.run(insn);
  ASSERT_FALSE(r) << "succeeded as " << to_string(*r);
  ASSERT_TRUE(r.error().fault()) << r.error().message();
  EXPECT_EQ(r.error().fault()->vector, vector) << r.error().message();
  EXPECT_EQ(r.error().fault()->error_code, error_code) << r.error().message();
  EXPECT_NE(r.error().message().find("iret (cf)"), std::string::npos) << r.error().message();
  EXPECT_TRUE(same_cpu(before, w.cpu));
  EXPECT_TRUE(memory_before == w.env.snapshot());
}

void expect_refused(IretWorld& w, std::initializer_list<uint8_t> insn, int code, const std::string& text) {
  CpuState before = w.cpu;
  auto memory_before = w.env.snapshot();
  auto r = w.run(insn);
  ASSERT_FALSE(r) << "succeeded as " << to_string(*r);
  EXPECT_EQ(r.error().code(), code) << r.error().message();
  EXPECT_FALSE(r.error().fault()) << r.error().message();
  EXPECT_NE(r.error().message().find(text), std::string::npos) << r.error().message();
  EXPECT_TRUE(same_cpu(before, w.cpu));
  EXPECT_TRUE(memory_before == w.env.snapshot());
}

TEST(AssistIret, SamePrivilege32) {
  IretWorld w;
  w.cpu.regs.rflags = 0x2 | kRF;  // IF clear, as in a handler
  w.cpu.regs.rax = 0x1111;
  w.cpu.sregs.cs.avl = 1;  // stale cache bits must not survive the reload
  w.frame({0x00123456, kSelCode32, 0x2 | kIF | kArith | kAC | kID | kRF});
  auto r = w.run({0xcf});
  ASSERT_TRUE(r) << r.error().message();
  EXPECT_EQ(*r, AssistKind::Iret);
  EXPECT_EQ(w.cpu.regs.rip, 0x123456u);
  EXPECT_EQ(w.cpu.regs.rsp, kStack + 12);
  // RF comes from the stack: iret is how a handler sets it (SDM vol. 3 18.3.1.1).
  EXPECT_EQ(w.cpu.regs.rflags, 0x2 | kIF | kArith | kAC | kID | kRF);
  EXPECT_EQ(w.cpu.regs.rax, 0x1111u);
  const kvm_segment& cs = w.cpu.sregs.cs;
  EXPECT_EQ(cs.selector, kSelCode32);
  EXPECT_EQ(cs.base, 0u);
  EXPECT_EQ(cs.limit, 0xffffffffu);
  EXPECT_EQ(cs.type, 0xb);
  EXPECT_EQ(cs.present, 1);
  EXPECT_EQ(cs.dpl, 0);
  EXPECT_EQ(cs.db, 1);
  EXPECT_EQ(cs.s, 1);
  EXPECT_EQ(cs.l, 0);
  EXPECT_EQ(cs.g, 1);
  EXPECT_EQ(cs.avl, 0);
  EXPECT_EQ(cs.unusable, 0);
  EXPECT_EQ(w.cpu.sregs.ss.selector, kSelData);
}

TEST(AssistIret, SamePrivilege16KeepsTheUpperHalfOfEflags) {
  IretWorld w;
  w.cpu.regs.rflags = 0x2 | kAC | kID | kVIF | kRF;
  w.frame({0x0345, kSelCode16, 0x2 | kIF | kArith}, 2);
  auto r = w.run({0x66, 0xcf});  // iretw
  ASSERT_TRUE(r) << r.error().message();
  EXPECT_EQ(w.cpu.regs.rip, 0x345u);
  EXPECT_EQ(w.cpu.regs.rsp, kStack + 6);
  EXPECT_EQ(w.cpu.regs.rflags, 0x2 | kIF | kArith | kAC | kID | kVIF | kRF);
  EXPECT_EQ(w.cpu.sregs.cs.selector, kSelCode16);
  EXPECT_EQ(w.cpu.sregs.cs.base, 0x10000u);
  EXPECT_EQ(w.cpu.sregs.cs.limit, 0xffffu);
  EXPECT_EQ(w.cpu.sregs.cs.db, 0);
  EXPECT_EQ(w.cpu.sregs.cs.g, 0);
  // Loading the descriptor set its accessed bit, in the GDT as the CPU does.
  EXPECT_EQ(w.env.peek_le(World::kGdt + kSelCode16 + 5, 1), 0x9bu);
}

// In a 16-bit code segment cf is the 16-bit form and 66 cf the 32-bit one.
TEST(AssistIret, OperandSizeFollowsTheCodeSegment) {
  IretWorld w;
  w.cpu.sregs.cs.db = 0;
  w.frame({0x0345, kSelCode16, 0x2 | kArith}, 2);
  ASSERT_TRUE(w.run({0xcf}));
  EXPECT_EQ(w.cpu.regs.rip, 0x345u);
  EXPECT_EQ(w.cpu.regs.rsp, kStack + 6);

  IretWorld d;
  d.cpu.sregs.cs.db = 0;
  d.frame({0x12345, kSelCode32, 0x2 | kAC});
  ASSERT_TRUE(d.run({0x66, 0xcf}));
  EXPECT_EQ(d.cpu.regs.rip, 0x12345u);
  EXPECT_EQ(d.cpu.regs.rsp, kStack + 12);
  EXPECT_EQ(d.cpu.regs.rflags, 0x2 | kAC);
  EXPECT_EQ(d.cpu.sregs.cs.db, 1);
}

TEST(AssistIret, SixteenBitStackUsesSpOnly) {
  IretWorld w;
  w.cpu.sregs.ss.db = 0;
  w.cpu.sregs.ss.limit = 0xffff;
  w.cpu.sregs.ss.g = 0;
  w.cpu.regs.rsp = 0xabcd8000;  // ESP's upper half is not part of a 16-bit stack pointer
  w.env.poke_le(0x8000, 0x2000, 4);
  w.env.poke_le(0x8004, kSelCode32, 4);
  w.env.poke_le(0x8008, 0x2, 4);
  auto r = w.run({0xcf});
  ASSERT_TRUE(r) << r.error().message();
  EXPECT_EQ(w.cpu.regs.rsp, 0xabcd800cu);
  EXPECT_EQ(w.cpu.regs.rip, 0x2000u);
}

TEST(AssistIret, EflagsRulesByCplAndIopl) {
  // At CPL 0 IOPL, IF, VIF and VIP load; VM never does here.
  IretWorld w;
  w.cpu.regs.rflags = 0x2;
  w.frame({0x1000, kSelCode32, 0x2 | kIOPL3 | kIF | kVIF | kVIP});
  ASSERT_TRUE(w.run({0xcf}));
  EXPECT_EQ(w.cpu.regs.rflags, 0x2 | kIOPL3 | kIF | kVIF | kVIP);

  // At CPL 3 with IOPL 0 neither IF nor IOPL nor VIF/VIP change, and a popped VM is ignored.
  IretWorld u;
  u.at_cpl3();
  u.cpu.regs.rflags = 0x2 | kIF;
  u.frame({0x1000, kSelUserCode | 3, 0x2 | kIOPL3 | kVM | kVIF | kVIP | kArith | kAC});
  auto r = u.run({0xcf});
  ASSERT_TRUE(r) << r.error().message();
  EXPECT_EQ(u.cpu.regs.rflags, 0x2 | kIF | kArith | kAC);

  // At CPL 3 with IOPL 3, IF loads but IOPL stays.
  IretWorld v;
  v.at_cpl3();
  v.cpu.regs.rflags = 0x2 | kIOPL3 | kIF;
  v.frame({0x1000, kSelUserCode | 3, 0x2});
  ASSERT_TRUE(v.run({0xcf}));
  EXPECT_EQ(v.cpu.regs.rflags, 0x2 | kIOPL3);
}

TEST(AssistIret, OuterPrivilegeToCpl3) {
  IretWorld w;
  w.cpu.regs.rflags = 0x2;
  w.cpu.sregs.ds = flat_segment(kSelData, 0x3, false, true);                 // DPL 0 data: nulled
  w.cpu.sregs.es = flat_segment(kSelConforming0, 0xf, false, true);          // conforming code: kept
  w.cpu.sregs.fs = flat_segment(kSelUserData | 3, 0x3, false, true);         // DPL 3 data: kept
  w.cpu.sregs.fs.dpl = 3;
  w.cpu.sregs.gs = flat_segment(kSelCode32, 0xb, false, true);               // non-conforming code: nulled
  w.frame({0x401000, kSelUserCode | 3, 0x2 | kIF | kAC, 0x7ffff0, kSelUserData | 3});
  auto r = w.run({0xcf});
  ASSERT_TRUE(r) << r.error().message();
  EXPECT_EQ(w.cpu.regs.rip, 0x401000u);
  EXPECT_EQ(w.cpu.regs.rsp, 0x7ffff0u);
  EXPECT_EQ(w.cpu.regs.rflags, 0x2 | kIF | kAC);
  EXPECT_EQ(w.cpu.sregs.cs.selector, kSelUserCode | 3);
  EXPECT_EQ(w.cpu.sregs.cs.dpl, 3);
  EXPECT_EQ(w.cpu.sregs.cs.type, 0xb);
  const kvm_segment& ss = w.cpu.sregs.ss;
  EXPECT_EQ(ss.selector, kSelUserData | 3);
  EXPECT_EQ(ss.dpl, 3);  // KVM reads the CPL from here
  EXPECT_EQ(ss.type, 0x3);
  EXPECT_EQ(ss.present, 1);
  EXPECT_EQ(ss.db, 1);
  EXPECT_EQ(ss.limit, 0xffffffffu);
  EXPECT_EQ(ss.unusable, 0);
  EXPECT_EQ(w.cpu.sregs.ds.selector, 0);
  EXPECT_EQ(w.cpu.sregs.ds.unusable, 1);
  EXPECT_EQ(w.cpu.sregs.ds.present, 0);
  EXPECT_EQ(w.cpu.sregs.gs.selector, 0);
  EXPECT_EQ(w.cpu.sregs.gs.unusable, 1);
  EXPECT_EQ(w.cpu.sregs.es.selector, kSelConforming0);
  EXPECT_EQ(w.cpu.sregs.es.unusable, 0);
  EXPECT_EQ(w.cpu.sregs.fs.selector, kSelUserData | 3);
  EXPECT_EQ(w.cpu.sregs.fs.unusable, 0);
  // Both loaded descriptors are marked accessed.
  EXPECT_EQ(w.env.peek_le(World::kGdt + kSelUserCode + 5, 1), 0xfbu);
  EXPECT_EQ(w.env.peek_le(World::kGdt + kSelUserData + 5, 1), 0xf3u);
}

TEST(AssistIret, OuterPrivilege16BitFormAndStack) {
  IretWorld w;
  w.frame({0x0100, kSelUserCode | 3, 0x2, 0x8ff0, kSelUserData16 | 3}, 2);
  // A 16-bit inner stack: SP alone addresses the frame, and ESP's upper half is not part of it.
  w.cpu.regs.rsp = 0xa5a50000 | kStack;
  w.cpu.sregs.ss.db = 0;
  auto r = w.run({0x66, 0xcf});
  ASSERT_TRUE(r) << r.error().message();
  EXPECT_EQ(w.cpu.regs.rip, 0x100u);
  // The new stack is 16-bit: only SP is loaded, ESP's upper half stays the inner level's.
  EXPECT_EQ(w.cpu.regs.rsp, 0xa5a58ff0u);
  EXPECT_EQ(w.cpu.sregs.ss.selector, kSelUserData16 | 3);
  EXPECT_EQ(w.cpu.sregs.ss.db, 0);
  EXPECT_EQ(w.cpu.sregs.ss.limit, 0xffffu);
  EXPECT_EQ(w.cpu.sregs.ss.dpl, 3);
}

TEST(AssistIret, LdtSelectors) {
  IretWorld w;
  w.env.poke_le(kLdt + 8, kCode32, 8);
  w.cpu.sregs.ldt = flat_segment(0x48, 0x2, false, false);
  w.cpu.sregs.ldt.base = kLdt;
  w.cpu.sregs.ldt.limit = 0xf;
  w.cpu.sregs.ldt.s = 0;
  w.frame({0x1000, 0x0c, 0x2});  // index 1, TI=1, RPL 0
  auto r = w.run({0xcf});
  ASSERT_TRUE(r) << r.error().message();
  EXPECT_EQ(w.cpu.sregs.cs.selector, 0x0c);
  EXPECT_EQ(w.cpu.sregs.cs.db, 1);

  IretWorld beyond = IretWorld();
  beyond.cpu.sregs.ldt = w.cpu.sregs.ldt;
  beyond.frame({0x1000, 0x14, 0x2});  // index 2: beyond the LDT limit 0xf
  expect_fault(beyond, {0xcf}, Vector::GP, 0x14);

  IretWorld none;
  none.cpu.sregs.ldt.unusable = 1;
  none.frame({0x1000, 0x0c, 0x2});
  expect_fault(none, {0xcf}, Vector::GP, 0x0c);
}

TEST(AssistIret, CodeSegmentChecks) {
  auto with_cs = [](uint16_t cs, bool cpl3 = false) {
    IretWorld w;
    if (cpl3) w.at_cpl3();
    w.frame({0x1000, cs, 0x2});
    return w;
  };
  IretWorld w = with_cs(0);
  expect_fault(w, {0xcf}, Vector::GP, 0);                         // null
  w = with_cs(3);
  expect_fault(w, {0xcf}, Vector::GP, 0);                         // null with RPL 3
  w = with_cs(0xb0);
  expect_fault(w, {0xcf}, Vector::GP, 0xb0);                      // beyond the GDT limit
  w = with_cs(kSelData);
  expect_fault(w, {0xcf}, Vector::GP, kSelData);                  // a data segment
  w = with_cs(kSelTss);
  expect_fault(w, {0xcf}, Vector::GP, kSelTss);                   // a system descriptor
  w = with_cs(kSelCode32, true);
  expect_fault(w, {0xcf}, Vector::GP, kSelCode32);                // RPL 0 below CPL 3
  w = with_cs(kSelConforming3);
  expect_fault(w, {0xcf}, Vector::GP, kSelConforming3);           // conforming, DPL 3 > RPL 0
  w = with_cs(kSelCode32 | 3);
  expect_fault(w, {0xcf}, Vector::GP, kSelCode32);                // non-conforming, DPL 0 != RPL 3
  w = with_cs(kSelUserCode);
  expect_fault(w, {0xcf}, Vector::GP, kSelUserCode);              // non-conforming, DPL 3 != RPL 0
  w = with_cs(kSelCode32NotPresent);
  expect_fault(w, {0xcf}, Vector::NP, kSelCode32NotPresent);      // not present

  // A conforming segment with DPL <= RPL is fine, and CPL stays the RPL.
  w = with_cs(kSelConforming0);
  auto r = w.run({0xcf});
  ASSERT_TRUE(r) << r.error().message();
  EXPECT_EQ(w.cpu.sregs.cs.selector, kSelConforming0);
  EXPECT_EQ(w.cpu.sregs.cs.type, 0xf);
}

TEST(AssistIret, EipBeyondTheCodeLimit) {
  IretWorld w;
  w.frame({0x2000, kSelCode32Based, 0x2});  // limit 0x1fff
  expect_fault(w, {0xcf}, Vector::GP, 0);
  IretWorld ok;
  ok.frame({0x1fff, kSelCode32Based, 0x2});
  ASSERT_TRUE(ok.run({0xcf}));
  EXPECT_EQ(ok.cpu.sregs.cs.base, 0x12345678u);
  // A 16-bit code segment ends at 64 KiB.
  IretWorld small;
  small.frame({0x10000, kSelCode16, 0x2});
  expect_fault(small, {0xcf}, Vector::GP, 0);
}

TEST(AssistIret, StackLimitIsSs0) {
  IretWorld w;
  w.cpu.sregs.ss.limit = kStack + 10;  // the 12-byte frame needs kStack + 11
  w.cpu.sregs.ss.g = 0;
  w.frame({0x1000, kSelCode32, 0x2});
  expect_fault(w, {0xcf}, Vector::SS, 0);
  w.cpu.sregs.ss.limit = kStack + 11;
  ASSERT_TRUE(w.run({0xcf}));

  // An outer return also pops ESP and SS, which must lie inside the segment.
  IretWorld o;
  o.cpu.sregs.ss.limit = kStack + 12 + 6;
  o.cpu.sregs.ss.g = 0;
  o.frame({0x1000, kSelUserCode | 3, 0x2, 0x8000, kSelUserData | 3});
  expect_fault(o, {0xcf}, Vector::SS, 0);

  // Expand-down: offsets at or below the limit are outside.
  IretWorld d;
  d.cpu.sregs.ss.type = 0x7;
  d.cpu.sregs.ss.limit = kStack + 4;
  d.frame({0x1000, kSelCode32, 0x2});
  expect_fault(d, {0xcf}, Vector::SS, 0);
}

TEST(AssistIret, StackSegmentChecksOnOuterReturn) {
  auto with_ss = [](uint16_t ss) {
    IretWorld w;
    w.frame({0x1000, kSelUserCode | 3, 0x2, 0x8000, ss});
    return w;
  };
  IretWorld w = with_ss(0);
  expect_fault(w, {0xcf}, Vector::GP, 0);                                     // null
  w = with_ss(0xb3);
  expect_fault(w, {0xcf}, Vector::GP, 0xb0);                                  // beyond the GDT limit
  w = with_ss(kSelUserData | 2);
  expect_fault(w, {0xcf}, Vector::GP, kSelUserData);                          // RPL != CS.RPL
  w = with_ss(kSelUserReadOnly | 3);
  expect_fault(w, {0xcf}, Vector::GP, kSelUserReadOnly);                      // not writable
  w = with_ss(kSelUserCode | 3);
  expect_fault(w, {0xcf}, Vector::GP, kSelUserCode);                          // code
  w = with_ss(kSelData0Unaccessed | 3);
  expect_fault(w, {0xcf}, Vector::GP, kSelData0Unaccessed);                   // DPL 0 != 3
  w = with_ss(kSelUserDataNotPresent | 3);
  expect_fault(w, {0xcf}, Vector::SS, kSelUserDataNotPresent);                // not present
  w = with_ss(0x0c | 3);
  expect_fault(w, {0xcf}, Vector::GP, 0x0c);                                  // LDT, none loaded
}

TEST(AssistIret, NestedTaskAndVirtual8086StopTheVm) {
  IretWorld w;
  w.cpu.regs.rflags = 0x2 | kNT;
  w.frame({0x1000, kSelCode32, 0x2});
  expect_refused(w, {0xcf}, EOPNOTSUPP, "iret with EFLAGS.NT: nested task return is not supported");

  IretWorld v;
  v.frame({0x1000, kSelCode32, 0x2 | kVM});
  expect_refused(v, {0xcf}, EOPNOTSUPP, "iret to virtual-8086 mode");
  // A 16-bit EFLAGS image has no VM bit: the same bytes are an ordinary return.
  IretWorld v16;
  v16.frame({0x1000, kSelCode32, 0x2}, 2);
  ASSERT_TRUE(v16.run({0x66, 0xcf}));
}

TEST(AssistIret, ModesEvmmLeavesAlone) {
  IretWorld r;
  r.real_mode();
  expect_refused(r, {0xcf}, EOPNOTSUPP, "iret in real mode");
  IretWorld l;
  l.long_mode();
  expect_refused(l, {0x48, 0xcf}, EOPNOTSUPP, "IA-32e mode");
  // LOCK on iret is #UD, which the decoder raises (SDM vol. 2 LOCK).
  IretWorld lock;
  auto f = lock.run({0xf0, 0xcf});
  ASSERT_FALSE(f);
  ASSERT_TRUE(f.error().fault()) << f.error().message();
  EXPECT_EQ(f.error().fault()->vector, Vector::UD);
}

// 32-bit paging is refused by this host's KVM, so the assists' page walk does not do it either:
// an iret with CR0.PG outside IA-32e mode is refused, not guessed at. (The #PF of an unmapped
// stack page is checked under IA-32e paging in assist_memory_test.cpp.)
TEST(AssistIret, PagingOutsideLongModeIsRefused) {
  IretWorld w;
  w.cpu.sregs.cr0 |= 1u << 31;
  expect_refused(w, {0xcf}, EOPNOTSUPP, "32-bit and PAE paging");
}

}  // namespace
}  // namespace evmm
