#include "debug/gdb_stub.h"

#include <gtest/gtest.h>

#include <map>

#include "debug/gdb_packet.h"

namespace evmm::gdb {
namespace {

// Two threads, one page of memory at 0x1000 (anything else is unmapped), and a log of calls.
class FakeTarget final : public DebugTarget {
 public:
  FakeTarget() {
    for (unsigned t = 0; t < 2; ++t)
      for (unsigned i = 0; i < 17; ++i) regs[t].gpr[i] = 0x100 * (t + 1) + i;
    regs[0].eflags = 0x246;
    regs[0].seg = {0x8, 0x10, 0x10, 0x10, 0, 0};
    for (unsigned i = 0; i < page.size(); ++i) page[i] = static_cast<uint8_t>(i);
  }
  unsigned thread_count() const override { return 2; }
  Result<GdbRegisters> read_registers(unsigned t) override { return regs.at(t); }
  Result<void> write_registers(unsigned t, const GdbRegisters& r) override {
    regs.at(t) = r;
    return {};
  }
  Result<void> read_memory(unsigned, uint64_t gva, std::span<uint8_t> out) override {
    if (gva < 0x1000 || gva + out.size() > 0x2000) return make_error(EFAULT, "unmapped");
    std::copy_n(page.begin() + (gva - 0x1000), out.size(), out.begin());
    return {};
  }
  Result<void> write_memory(unsigned, uint64_t gva, std::span<const uint8_t> in) override {
    if (gva < 0x1000 || gva + in.size() > 0x2000) return make_error(EFAULT, "unmapped");
    std::copy(in.begin(), in.end(), page.begin() + (gva - 0x1000));
    return {};
  }
  Result<void> insert_breakpoint(BreakKind k, uint64_t addr, uint64_t) override {
    if (bps.size() == 4) return make_error(ENOSPC, "full");
    bps[addr] = k;
    return {};
  }
  Result<void> remove_breakpoint(BreakKind, uint64_t addr, uint64_t) override {
    if (!bps.erase(addr)) return make_error(ENOENT, "none");
    return {};
  }
  Result<void> resume(std::span<const ResumeAction> a) override {
    resumed.assign(a.begin(), a.end());
    return {};
  }
  Result<void> detach() override {
    detached = true;
    bps.clear();
    return {};
  }
  void kill() override { killed = true; }

  std::array<GdbRegisters, 2> regs{};
  std::array<uint8_t, 0x1000> page{};
  std::map<uint64_t, BreakKind> bps;
  std::vector<ResumeAction> resumed;
  bool detached = false, killed = false;
};

class GdbStubTest : public ::testing::Test {
 protected:
  std::string ask(std::string_view p) { return stub.handle(p).value_or("<none>"); }
  FakeTarget target;
  Stub stub{target};
};

TEST_F(GdbStubTest, AnnouncesItsFeaturesAndThreads) {
  EXPECT_EQ(ask("qSupported:multiprocess+;swbreak+"), "PacketSize=4000;swbreak+;hwbreak+;vContSupported+");
  EXPECT_EQ(ask("qAttached"), "1");
  EXPECT_EQ(ask("qfThreadInfo"), "m1,2");
  EXPECT_EQ(ask("qsThreadInfo"), "l");
  EXPECT_EQ(ask("qC"), "QC1");
  EXPECT_EQ(ask("T2"), "OK");
  EXPECT_EQ(ask("T3"), "E03");  // ESRCH
  EXPECT_EQ(ask("?"), "T05thread:1;");
  EXPECT_EQ(ask("qUnknownThing"), "");
  EXPECT_EQ(ask("vMustReplyEmpty"), "");
}

TEST_F(GdbStubTest, ReadsRegistersInGdbsOrder) {
  std::string g = ask("g");
  ASSERT_EQ(g.size(), 2 * 536u);
  EXPECT_EQ(g.substr(0, 16), "0001000000000000");         // rax, little-endian
  EXPECT_EQ(g.substr(16 * 16, 16), "1001000000000000");    // rip (register 16)
  EXPECT_EQ(g.substr(2 * 136, 8), "46020000");            // eflags
  EXPECT_EQ(g.substr(2 * 140, 8), "08000000");            // cs
  EXPECT_EQ(ask("p10"), "1001000000000000");              // rip again, through 'p'
  EXPECT_EQ(ask("p38"), "00000000");                      // mxcsr, the last (56)
  EXPECT_EQ(ask("p39"), "E16");                           // no register 57
  // Hg2 selects the second thread.
  EXPECT_EQ(ask("Hg2"), "OK");
  EXPECT_EQ(ask("p0"), "0002000000000000");
  EXPECT_EQ(ask("Hg9"), "E03");
}

TEST_F(GdbStubTest, WritesRegisters) {
  EXPECT_EQ(ask("P10=efbeadde00000000"), "OK");
  EXPECT_EQ(target.regs[0].gpr[16], 0xdeadbeefu);
  EXPECT_EQ(ask("P10=efbe"), "E16");  // wrong size
  std::string g = ask("g");
  g.replace(0, 16, "2a00000000000000");
  EXPECT_EQ(ask("G" + g), "OK");
  EXPECT_EQ(target.regs[0].gpr[0], 42u);
  EXPECT_EQ(target.regs[0].gpr[16], 0xdeadbeefu);
  EXPECT_EQ(ask("Gzz"), "E16");
}

TEST_F(GdbStubTest, ReadsAndWritesMemory) {
  EXPECT_EQ(ask("m1004,4"), "04050607");
  EXPECT_EQ(ask("m1ffe,4"), "E0e");  // crosses into unmapped memory: EFAULT (14)
  EXPECT_EQ(ask("m1004"), "E16");
  EXPECT_EQ(ask("M1000,2:aabb"), "OK");
  EXPECT_EQ(target.page[0], 0xaa);
  EXPECT_EQ(target.page[1], 0xbb);
  EXPECT_EQ(ask("M1000,3:aabb"), "E16");  // length and data disagree
  // X carries binary data, escapes already undone by the decoder.
  EXPECT_EQ(ask(std::string("X1002,3:#}\x00", 11)), "OK");
  EXPECT_EQ(target.page[2], '#');
  EXPECT_EQ(target.page[3], '}');
  EXPECT_EQ(target.page[4], 0);
  EXPECT_EQ(ask("X0,0:"), "OK");  // gdb's probe for X
  EXPECT_EQ(ask("m1000,fffffff"), "E16");  // over the largest transfer
}

TEST_F(GdbStubTest, InsertsAndRemovesBreakpoints) {
  EXPECT_EQ(ask("Z0,1234,1"), "OK");
  EXPECT_EQ(ask("Z1,1300,1"), "OK");
  EXPECT_EQ(ask("Z2,1400,4"), "OK");
  EXPECT_EQ(target.bps[0x1234], BreakKind::Software);
  EXPECT_EQ(target.bps[0x1300], BreakKind::Hardware);
  EXPECT_EQ(target.bps[0x1400], BreakKind::WriteWatch);
  EXPECT_EQ(ask("Z4,1500,8"), "OK");
  EXPECT_EQ(ask("Z3,1600,8"), "E1c");  // ENOSPC from the target
  EXPECT_EQ(ask("z0,1234,1"), "OK");
  EXPECT_EQ(ask("z0,1234,1"), "E02");
  EXPECT_EQ(ask("Z5,1,1"), "E16");
  EXPECT_EQ(ask("Z0,,1"), "E16");
}

TEST_F(GdbStubTest, ResumesAndDoesNotReplyUntilTheStop) {
  EXPECT_EQ(stub.handle("c"), std::nullopt);
  EXPECT_EQ(target.resumed, (std::vector{ResumeAction::Continue, ResumeAction::Continue}));
  EXPECT_EQ(ask("Hc2"), "OK");
  EXPECT_EQ(stub.handle("s"), std::nullopt);
  EXPECT_EQ(target.resumed, (std::vector{ResumeAction::Continue, ResumeAction::Step}));
  EXPECT_EQ(stub.handle("c1000"), std::nullopt);  // resume at an address
  EXPECT_EQ(target.regs[1].gpr[16], 0x1000u);
}

TEST_F(GdbStubTest, ParsesVCont) {
  EXPECT_EQ(ask("vCont?"), "vCont;c;C;s;S");
  EXPECT_EQ(stub.handle("vCont;s:2;c"), std::nullopt);
  EXPECT_EQ(target.resumed, (std::vector{ResumeAction::Continue, ResumeAction::Step}));
  EXPECT_EQ(stub.handle("vCont;s:1"), std::nullopt);  // all-stop: thread 2 runs anyway
  EXPECT_EQ(target.resumed, (std::vector{ResumeAction::Step, ResumeAction::Continue}));
  EXPECT_EQ(ask("vCont;q"), "E16");
  EXPECT_EQ(ask("vCont;s:7"), "E16");
}

TEST_F(GdbStubTest, FormatsStopRepliesAndFollowsTheStoppedThread) {
  EXPECT_EQ(stub.stop_reply({1, StopEvent::Reason::SoftwareBreak}), "T05thread:2;swbreak:;");
  EXPECT_EQ(ask("qC"), "QC2");
  EXPECT_EQ(ask("?"), "T05thread:2;swbreak:;");
  EXPECT_EQ(stub.stop_reply({0, StopEvent::Reason::HardwareBreak}), "T05thread:1;hwbreak:;");
  EXPECT_EQ(stub.stop_reply({0, StopEvent::Reason::Watch, BreakKind::WriteWatch, 0x1400}), "T05thread:1;watch:1400;");
  EXPECT_EQ(stub.stop_reply({0, StopEvent::Reason::Watch, BreakKind::AccessWatch, 0x10}), "T05thread:1;awatch:10;");
  EXPECT_EQ(stub.stop_reply({0, StopEvent::Reason::Interrupt}), "T02thread:1;");
  EXPECT_EQ(stub.stop_reply({1, StopEvent::Reason::Step}), "T05thread:2;");
}

TEST_F(GdbStubTest, DetachesAndKills) {
  ask("Z0,1234,1");
  EXPECT_EQ(ask("D"), "OK");
  EXPECT_TRUE(target.detached);
  EXPECT_TRUE(stub.detached());
  EXPECT_EQ(stub.handle("k"), std::nullopt);
  EXPECT_TRUE(target.killed);
  EXPECT_TRUE(stub.killed());
}

TEST_F(GdbStubTest, CountsMalformedCommands) {
  for (auto p : {"m", "Mx", "Hz1", "P", "pzz", "Z0"}) EXPECT_EQ(ask(p).substr(0, 1), "E") << p;
  EXPECT_GE(stub.malformed(), 5u);
  EXPECT_EQ(ask(""), "");
}

}  // namespace
}  // namespace evmm::gdb
