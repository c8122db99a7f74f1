#include "vcpu/register_dump.h"

#include <gtest/gtest.h>

namespace evmm {
namespace {

bool has(const std::string& s, const std::string& needle) { return s.find(needle) != std::string::npos; }

VcpuSnapshot long_mode_snapshot() {
  VcpuSnapshot s;
  s.regs.rax = 0x1122334455667788;
  s.regs.rsp = 0x7000;
  s.regs.rip = 0xffffffff81000010;
  s.regs.rflags = 0x246;  // IF, ZF, PF, reserved bit 1
  s.sregs.cs = {.base = 0, .limit = 0xffffffff, .selector = 0x10, .type = 0xb, .present = 1, .dpl = 0,
                .db = 0, .s = 1, .l = 1, .g = 1, .avl = 0, .unusable = 0, .padding = 0};
  s.sregs.cr0 = 0x80050033;
  s.sregs.cr2 = 0xdeadbeef000;
  s.sregs.cr3 = 0x1000;
  s.sregs.cr4 = 0x20;
  s.sregs.efer = 0xd01;  // LMA | LME | SCE | NXE
  s.mp_state = KVM_MP_STATE_HALTED;
  kvm_vcpu_events e{};
  e.exception.injected = 1;
  e.exception.nr = 14;
  e.exception.has_error_code = 1;
  e.exception.error_code = 0x2;
  s.events = e;
  s.code_linear = s.regs.rip;
  s.code = {0x0f, 0x0b, 0xf4};
  return s;
}

TEST(RegisterDump, NamesEveryGroupAndTheCodeBytes) {
  auto text = format_register_dump(1, long_mode_snapshot());
  EXPECT_TRUE(has(text, "  vCPU 1: halted\n")) << text;
  EXPECT_TRUE(has(text, "RAX=1122334455667788")) << text;
  EXPECT_TRUE(has(text, "RSP=0000000000007000")) << text;
  EXPECT_TRUE(has(text, "RIP=ffffffff81000010 RFL=00000246 [--I--Z-P-] CPL=0 64-bit")) << text;
  EXPECT_TRUE(has(text, "  CS =0010 base=0000000000000000 limit=ffffffff type=b s=1 dpl=0 p=1 db=0 l=1 g=1")) << text;
  EXPECT_TRUE(has(text, "CR0=80050033 CR2=00000deadbeef000 CR3=0000000000001000 CR4=00000020")) << text;
  EXPECT_TRUE(has(text, "EFER=0000000000000d01")) << text;
  EXPECT_TRUE(has(text, "  events: exception injected vector 14 error 0x2\n")) << text;
  EXPECT_TRUE(has(text, "  code at 0xffffffff81000010: 0f 0b f4\n")) << text;
  for (size_t pos = 0; pos < text.size(); pos = text.find('\n', pos) + 1) EXPECT_EQ(text.compare(pos, 2, "  "), 0);
  EXPECT_EQ(text.back(), '\n');
}

TEST(RegisterDump, SaysWhatItCouldNotRead) {
  VcpuSnapshot s = long_mode_snapshot();
  s.events.reset();
  s.mp_state.reset();
  s.code.clear();
  auto text = format_register_dump(0, s);
  EXPECT_TRUE(has(text, "vCPU 0: MP state unreadable")) << text;
  EXPECT_TRUE(has(text, "events: unreadable")) << text;
  EXPECT_TRUE(has(text, "code at 0xffffffff81000010: not mapped to RAM")) << text;
}

TEST(RegisterDump, RealAndProtectedModesAreNamed) {
  VcpuSnapshot s;
  s.sregs.cr0 = 0x10;
  EXPECT_TRUE(has(format_register_dump(0, s), "real mode")) << format_register_dump(0, s);
  s.sregs.cr0 = 0x11;
  s.sregs.cs.db = 1;
  EXPECT_TRUE(has(format_register_dump(0, s), "32-bit")) << format_register_dump(0, s);
  kvm_vcpu_events quiet{};
  s.events = quiet;
  EXPECT_TRUE(has(format_register_dump(0, s), "events: none")) << format_register_dump(0, s);
}

}  // namespace
}  // namespace evmm
