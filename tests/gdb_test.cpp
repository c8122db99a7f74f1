// evmm run --gdb with Debian's gdb in batch mode against the testprog guest on 2 vCPUs: threads,
// breakpoints, single steps, memory, watchpoints, continuing to the end, and kill.
#include <gtest/gtest.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>

#include <chrono>
#include <regex>
#include <thread>

#include "testing/test_vm.h"
#include "tests/kvm_test_util.h"

namespace evmm::testing {
namespace {

constexpr const char* kGdb = "/usr/bin/gdb";
// The guest as linked, with symbols and debug info; the stripped image evmm boots is made from it.
std::string symbols() { return guest("link/testprog.pvh.x86_64"); }

struct Session {
  ProcessResult vmm, gdb;
};

// Starts evmm with --gdb on a fresh socket, waits for it to listen, then runs gdb with commands.
Session debug_session(const std::string& cmdline, const std::vector<std::string>& commands) {
  std::string sock = ::testing::TempDir() + fmt::format("/evmm-gdb-{}.sock", ::getpid());
  ::unlink(sock.c_str());
  Session s;
  ProcessOptions vopts;
  vopts.timeout = std::chrono::seconds(60);
  std::thread vmm([&] {
    s.vmm = boot("testprog.pvh.elf", cmdline, 2, {"--gdb", sock, "--serial", "stdio"}, vopts);
  });
  // evmm creates the socket before it waits for gdb; no deadline here beyond evmm's own timeout.
  struct stat st;
  while (::stat(sock.c_str(), &st) != 0 && !s.vmm.timed_out) std::this_thread::sleep_for(std::chrono::milliseconds(10));
  std::vector<std::string> argv{kGdb, "-batch", "-nx", "-ex", "set architecture i386:x86-64", "-ex",
                                "set confirm off", "-ex", "file " + symbols()};
  // Commands before "target remote" read the ELF file itself.
  for (const auto& c : commands) {
    argv.push_back("-ex");
    argv.push_back(c == "TARGET" ? "target remote " + sock : c);
  }
  ProcessOptions gopts;
  gopts.timeout = std::chrono::seconds(60);
  s.gdb = run_process(argv, gopts);
  vmm.join();
  return s;
}

// Every "rip 0x..." value in gdb's output, in order.
std::vector<std::string> rips(const std::string& out) {
  std::vector<std::string> v;
  std::regex re(R"(\nrip\s+(0x[0-9a-f]+))");
  for (std::sregex_iterator it(out.begin(), out.end(), re), end; it != end; ++it) v.push_back((*it)[1]);
  return v;
}

// The lines that follow each "MARK" echo, up to the next one: what one command printed.
std::string between(const std::string& out, const std::string& from, const std::string& to) {
  size_t a = out.find(from), b = out.find(to);
  if (a == std::string::npos || b == std::string::npos || b < a) return {};
  return out.substr(a + from.size(), b - a - from.size());
}

TEST(Gdb, BreaksStepsReadsMemoryAndWatches) {
  REQUIRE_KVM();
  if (::access(kGdb, X_OK) != 0) GTEST_SKIP() << "no " << kGdb;
  auto s = debug_session("hello smp poweroff",
                         {"echo FILE-MEM\\n", "x/8xw &actions", "echo FILE-END\\n", "TARGET", "info threads",
                          "break action_hello", "continue", "info registers rip", "stepi", "info registers rip",
                          "echo TARGET-MEM\\n", "x/8xw &actions", "echo TARGET-END\\n", "hbreak rt_fwcfg_nb_cpus",
                          "continue", "info registers rip", "set can-use-hw-watchpoints 0", "watch rt_fwcfg_nb_cpus::n",
                          "continue", "delete",
                          "continue"});
  const std::string& out = s.gdb.out;
  SCOPED_TRACE("gdb stdout:\n" + out + "\ngdb stderr:\n" + s.gdb.err + "\nevmm stderr:\n" + s.vmm.err);
  // One thread per vCPU, named after it.
  EXPECT_TRUE(has(out, "Thread 1 (vCPU 0)"));
  EXPECT_TRUE(has(out, "Thread 2 (vCPU 1)"));
  EXPECT_FALSE(has(out, "Thread 3"));
  // The breakpoint stops vCPU 0 at the address gdb put it, from the ELF's symbols.
  std::smatch bp;
  ASSERT_TRUE(std::regex_search(out, bp, std::regex(R"(Breakpoint 1 at (0x[0-9a-f]+): file)")));
  EXPECT_TRUE(has(out, "hit Breakpoint 1, action_hello"));
  auto r = rips(out);
  ASSERT_GE(r.size(), 3u);
  EXPECT_EQ(r[0], bp[1].str());
  // stepi ran one instruction: rip moved on.
  EXPECT_NE(r[1], r[0]);
  // Memory read through the guest's page tables matches the ELF's bytes.
  std::string file_mem = between(out, "FILE-MEM\n", "FILE-END"), target_mem = between(out, "TARGET-MEM\n", "TARGET-END");
  EXPECT_TRUE(has(file_mem, "<actions>:")) << file_mem;
  EXPECT_EQ(file_mem, target_mem);
  // The hardware breakpoint: rt_fwcfg_nb_cpus is hello's first call.
  std::smatch hb;
  ASSERT_TRUE(std::regex_search(out, hb, std::regex(R"(Hardware assisted breakpoint 2 at (0x[0-9a-f]+))")));
  EXPECT_TRUE(has(out, "hit Breakpoint 2, rt_fwcfg_nb_cpus"));
  EXPECT_EQ(r[2], hb[1].str());
  // A watchpoint: the function caches the vCPU count, 2, in its static n. gdb's software watchpoint,
  // which single-steps: this host's emulator ignores data breakpoints (debug/README.md).
  EXPECT_TRUE(has(out, "Watchpoint 3: rt_fwcfg_nb_cpus::n"));
  EXPECT_TRUE(std::regex_search(out, std::regex(R"(Old value = 0\s+New value = 2)")));
  // With the breakpoints gone the guest runs to its power-off, and gdb hears the VM end.
  EXPECT_TRUE(has(out, "exited normally"));
  EXPECT_EQ(s.vmm.exit_status, 0);
  EXPECT_TRUE(has(s.vmm.out, "smp: 2 cpus up"));
}

// A debug exit with no debugger to take it (guest debugging enabled behind evmm's back) stops the VM
// with a line that says so, instead of being taken for some other exit.
TEST(GdbKvm, ADebugExitWithoutADebuggerStopsTheVm) {
  REQUIRE_KVM();
  TestVm vm;
  ASSERT_EQ(vm.create({.image = guest("testprog.pvh.elf"), .cmdline = "hello poweroff"}), "");
  kvm_guest_debug dbg{};
  dbg.control = KVM_GUESTDBG_ENABLE | KVM_GUESTDBG_SINGLESTEP;
  ASSERT_TRUE(vm->vcpu(0).fd().set_guest_debug(dbg));
  ASSERT_TRUE(vm->start());
  VmOutcome out;
  std::string serial = vm.finish(&out);
  EXPECT_EQ(out.kind, VmOutcome::Kind::VmmError) << out.message;
  EXPECT_TRUE(has(out.message, "debug exit (vector 1")) << out.message;
  EXPECT_TRUE(has(out.message, "no debugger attached")) << out.message;
  EXPECT_EQ(serial, "");  // stopped at the first instruction
}

TEST(Gdb, ABadEndpointIsAUsageError) {
  for (const char* bad : {"0", "65536", ""}) {
    auto r = boot("testprog.pvh.elf", "hello poweroff", 1, {"--gdb", bad});
    EXPECT_EQ(r.exit_status, 2) << bad << ": " << r.err;
    EXPECT_TRUE(has(r.err, "--gdb")) << r.err;
  }
}

TEST(Gdb, KillStopsTheVm) {
  REQUIRE_KVM();
  if (::access(kGdb, X_OK) != 0) GTEST_SKIP() << "no " << kGdb;
  auto s = debug_session("hello poweroff", {"TARGET", "info threads", "kill"});
  SCOPED_TRACE("gdb stdout:\n" + s.gdb.out + "\nevmm stderr:\n" + s.vmm.err);
  EXPECT_TRUE(has(s.gdb.out, "Thread 2 (vCPU 1)"));
  EXPECT_TRUE(has(s.gdb.out, "killed"));
  EXPECT_TRUE(has(s.vmm.err, "killed by gdb"));
  EXPECT_EQ(s.vmm.exit_status, 130);
  // The guest never ran: gdb killed it before the first continue.
  EXPECT_FALSE(has(s.vmm.out, "hello from"));
}

TEST(Gdb, GdbLeavingLetsTheGuestRun) {
  REQUIRE_KVM();
  if (::access(kGdb, X_OK) != 0) GTEST_SKIP() << "no " << kGdb;
  // gdb -batch disconnects at the end without 'D' or 'k'; evmm removes the breakpoint and runs on.
  auto s = debug_session("hello poweroff", {"TARGET", "hbreak action_hello"});
  SCOPED_TRACE("gdb stdout:\n" + s.gdb.out + "\nevmm stderr:\n" + s.vmm.err);
  EXPECT_EQ(s.vmm.exit_status, 0);
  EXPECT_TRUE(has(s.vmm.out, "hello from pvh on 2 cpus"));
}

// A minimal client for what gdb's batch mode cannot do: Ctrl-C while the guest runs.
class RawClient {
 public:
  explicit RawClient(const std::string& path) : fd_(::socket(AF_UNIX, SOCK_STREAM, 0)) {
    sockaddr_un a{};
    a.sun_family = AF_UNIX;
    std::snprintf(a.sun_path, sizeof a.sun_path, "%s", path.c_str());
    connected_ = ::connect(fd_, reinterpret_cast<sockaddr*>(&a), sizeof a) == 0;
  }
  ~RawClient() { ::close(fd_); }
  bool connected() const { return connected_; }
  void send(const std::string& bytes) { ASSERT_EQ(::write(fd_, bytes.data(), bytes.size()), ssize_t(bytes.size())); }
  // The data of the next packet from evmm (acks skipped); empty if the connection ends.
  std::string packet() {
    std::string data;
    char c;
    bool in = false;
    while (::read(fd_, &c, 1) == 1) {
      if (!in) {
        in = c == '$';
        continue;
      }
      if (c == '#') {
        char sum[2];
        if (::read(fd_, sum, 2) != 2) return {};
        send("+");
        return data;
      }
      data.push_back(c);
    }
    return {};
  }

 private:
  int fd_;
  bool connected_ = false;
};

TEST(Gdb, CtrlCStopsEveryVcpu) {
  REQUIRE_KVM();
  std::string sock = ::testing::TempDir() + fmt::format("/evmm-gdb-int-{}.sock", ::getpid());
  ::unlink(sock.c_str());
  ProcessResult vmm;
  ProcessOptions vopts;
  vopts.timeout = std::chrono::seconds(60);
  std::thread t([&] { vmm = boot("testprog.pvh.elf", "smp spin", 2, {"--gdb", sock}, vopts); });
  struct stat st;
  while (::stat(sock.c_str(), &st) != 0 && !vmm.timed_out) std::this_thread::sleep_for(std::chrono::milliseconds(10));
  {
    RawClient c(sock);
    ASSERT_TRUE(c.connected());
    c.send("$?#3f");
    EXPECT_EQ(c.packet(), "T05thread:1;");
    c.send("$vCont;c#a8");
    // The guest spins for ever: only the interrupt can stop it.
    c.send("\x03");
    std::string stop = c.packet();
    EXPECT_EQ(stop.substr(0, 10), "T02thread:") << stop;
    // Stopped: registers of both vCPUs can be read, and the VM is still there to kill.
    c.send("$Hg2#e1");
    EXPECT_EQ(c.packet(), "OK");
    c.send("$g#67");
    EXPECT_EQ(c.packet().size(), 2 * 536u);
    c.send("$k#6b");
  }
  t.join();
  EXPECT_EQ(vmm.exit_status, 130) << vmm.err;
  EXPECT_TRUE(has(vmm.err, "killed by gdb"));
}

}  // namespace
}  // namespace evmm::testing
