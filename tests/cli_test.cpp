// The evmm command line: version, caps, usage errors and images refused before any guest runs.
#include <gtest/gtest.h>

#include <signal.h>
#include <sys/stat.h>
#include <sys/syscall.h>

#include <cerrno>
#include <chrono>
#include <cstdio>
#include <cstring>
#include <fstream>
#include <thread>

#include "tests/kvm_test_util.h"

namespace evmm::testing {
namespace {

std::string write_temp(const std::string& name, const std::string& bytes) {
  std::string path = ::testing::TempDir() + "/" + name;
  std::ofstream(path, std::ios::binary) << bytes;
  return path;
}

TEST(Cli, VersionPrintsTheVersion) {
  auto r = evmm({"version"});
  EXPECT_EQ(r.exit_status, 0);
  EXPECT_EQ(r.out, "evmm " EVMM_VERSION "\n");
}

TEST(Cli, CapsListsRequiredCapabilities) {
  REQUIRE_KVM();
  auto r = evmm({"caps"});
  EXPECT_EQ(r.exit_status, 0) << r.err;
  EXPECT_NE(r.out.find("KVM_CAP_IRQCHIP"), std::string::npos);
  EXPECT_NE(r.out.find("KVM_CAP_IMMEDIATE_EXIT"), std::string::npos);
  // This host has no Xen support; the line must say so rather than omit it.
  EXPECT_NE(r.out.find("KVM_CAP_XEN_HVM"), std::string::npos);
}

TEST(Cli, UsageErrorsExitTwoWithOneLine) {
  for (auto args : std::vector<std::vector<std::string>>{
           {"run"},                                              // no --kernel
           {"run", "--kernel", "/x", "--cpus", "0"},             // out of range
           {"run", "--kernel", "/x", "--memory", "1"},
           {"run", "--kernel", "/x", "--serial", "bogus"},
           {"run", "--kernel", "/x", "--on-reset", "sometimes"},
           {"run", "--kernel", "/x", "--boot", "sideways"},
           {"run", "--kernel", "/x", "--decompress", "cloud"},
           {"frobnicate"},
       }) {
    auto r = evmm(args);
    EXPECT_EQ(r.exit_status, 2) << args.back() << ": " << r.err;
    EXPECT_EQ(count_lines(r.err), 1u) << r.err;
    EXPECT_EQ(r.err.rfind("evmm: ", 0), 0u) << r.err;
  }
}

struct BadImage {
  const char* name;
  std::string bytes;
  const char* says;
};

TEST(Cli, BadImagesAreRefusedWithOneLine) {
  REQUIRE_KVM();
  std::string elf_header_only = std::string("\x7f" "ELF\x01\x01\x01", 7) + std::string(9, '\0');
  for (const auto& bad : std::vector<BadImage>{
           {"empty.img", "", "kernel"},
           {"random.img", std::string(4096, '\x5a'), "kernel"},
           {"truncated.elf", elf_header_only, "kernel"},
       }) {
    auto path = write_temp(bad.name, bad.bytes);
    auto r = evmm({"run", "--kernel", path});
    EXPECT_EQ(r.exit_status, 6) << bad.name << ": " << r.err;
    EXPECT_EQ(count_lines(r.err), 1u) << bad.name << ": " << r.err;
    EXPECT_NE(r.err.find(bad.says), std::string::npos) << r.err;
    EXPECT_TRUE(r.out.empty());
  }
  auto r = evmm({"run", "--kernel", "/nonexistent/image"});
  EXPECT_EQ(r.exit_status, 6);
  EXPECT_NE(r.err.find("No such file"), std::string::npos) << r.err;
}

// --boot and --decompress choices an image cannot take: one line each, the image's exit status.
TEST(Cli, LinuxBootChoicesTheImageCannotTakeAreRefusedWithOneLine) {
  REQUIRE_KVM();
  std::string bz(0x1000, '\0');
  bz.replace(0x202, 4, "HdrS");
  bz[0x201] = 0x6a;
  bz[0x206] = 0x09;  // protocol 2.09
  bz[0x207] = 0x02;
  auto old_bz = write_temp("old.bzImage", bz);
  for (const auto& [args, says] : std::vector<std::pair<std::vector<std::string>, std::string>>{
           {{"run", "--kernel", old_bz}, "boot protocol 2.09 is older than 2.10"},
           {{"run", "--kernel", old_bz, "--boot", "pvh"}, "has no PVH entry"},
           {{"run", "--kernel", guest("demo.mb.elf"), "--decompress", "guest"}, "needs a Linux bzImage"},
           {{"run", "--kernel", guest("demo.mb.elf"), "--boot", "linux"}, "a 32-bit ELF"},
           {{"run", "--kernel", guest("demo.mb.elf"), "--boot", "pvh"}, "no PVH entry note"},
       }) {
    auto r = evmm(args);
    EXPECT_EQ(r.exit_status, 6) << r.err;
    EXPECT_EQ(count_lines(r.err), 1u) << r.err;
    EXPECT_TRUE(has(r.err, says)) << r.err;
  }
}

// A FIFO that nobody writes: opening it for reading without O_NONBLOCK would wait forever.
struct Fifo {
  std::string path;
  explicit Fifo(const std::string& name) : path(::testing::TempDir() + "/" + name) {
    ::unlink(path.c_str());
    EXPECT_EQ(::mkfifo(path.c_str(), 0600), 0) << std::strerror(errno);
  }
  ~Fifo() { ::unlink(path.c_str()); }
};

TEST(Cli, AFifoAsKernelOrInitrdIsRefusedAtOnce) {
  REQUIRE_KVM();
  Fifo fifo("evmm-cli-fifo");
  ProcessOptions opts;
  opts.timeout = std::chrono::seconds(20);
  for (const auto& args : std::vector<std::vector<std::string>>{
           {"run", "--kernel", fifo.path},
           {"run", "--kernel", guest("demo.mb.elf"), "--initrd", fifo.path},
       }) {
    auto r = evmm(args, opts);
    EXPECT_FALSE(r.timed_out) << args[2];
    EXPECT_EQ(r.exit_status, 6) << r.err;
    EXPECT_EQ(count_lines(r.err), 1u) << r.err;
    EXPECT_TRUE(has(r.err, "is not a regular file")) << r.err;
  }
}

// /proc/PID/syscall starts with the number of the system call the process is blocked in.
bool blocked_in(pid_t pid, long nr) {
  std::ifstream f(fmt::format("/proc/{}/syscall", pid));
  long n = -1;
  return f >> n && n == nr;
}

// Start-up can wait where nothing but a signal ends the wait: here, opening a FIFO given as the
// serial file before a reader appears. SIGINT and SIGTERM end evmm there too, with status 130.
TEST(Cli, SignalsEndEvmmWhileStartUpWaits) {
  REQUIRE_KVM();
  for (int sig : {SIGTERM, SIGINT}) {
    Fifo fifo("evmm-cli-serial-fifo");
    bool was_blocked = false;
    ProcessOptions opts;
    opts.timeout = std::chrono::seconds(20);
    opts.while_running = [&](pid_t pid) {
      for (int i = 0; i < 1000 && !was_blocked; ++i) {
        was_blocked = blocked_in(pid, SYS_openat);
        if (!was_blocked) std::this_thread::sleep_for(std::chrono::milliseconds(10));
      }
      ::kill(pid, sig);
    };
    auto r = evmm({"run", "--kernel", guest("demo.mb.elf"), "--serial", "file:" + fifo.path}, opts);
    EXPECT_TRUE(was_blocked) << "evmm never blocked opening the FIFO";
    EXPECT_FALSE(r.timed_out) << "signal " << sig;
    EXPECT_EQ(r.exit_status, 130) << r.err;
    EXPECT_EQ(count_lines(r.err), 1u) << r.err;
    EXPECT_TRUE(has(r.err, fmt::format("stopped by signal {} during start-up", sig))) << r.err;
  }
}

}  // namespace
}  // namespace evmm::testing
