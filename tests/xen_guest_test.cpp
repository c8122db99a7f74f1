// The Xen HVM test guests (guests/xen) booted by the evmm binary: every word's lines and the exit
// status, for the 64- and 32-bit images, with the PVH note and as plain ELF. The words and their lines
// are documented in guests/README.md.
//
// Most tests run the guest under evmm's Xen emulation (`evmm run --xen`); NoXenWithoutTheFlag and the
// *WithoutXen tests run it without, which also checks the guest runtimes on their own.
#include <gtest/gtest.h>

#include <fmt/format.h>

#include <optional>
#include <regex>
#include <sstream>

#include "tests/kvm_test_util.h"

namespace evmm::testing {
namespace {

struct XenImage {
  const char* file;
  unsigned width;
  bool pvh;  // with the PVH note (takes a command line); otherwise a plain ELF (runs the default list)
};

void PrintTo(const XenImage& img, std::ostream* os) { *os << img.file; }

constexpr XenImage kAllImages[] = {
    {"xen64.pvh.elf", 64, true}, {"xen64.elf", 64, false}, {"xen32.pvh.elf", 32, true}, {"xen32.elf", 32, false}};
constexpr XenImage kPvhImages[] = {{"xen64.pvh.elf", 64, true}, {"xen32.pvh.elf", 32, true}};

constexpr int kNoXenStatus = (0x70 << 1) | 1;  // the guest's debug-exit 0x70
constexpr int kFatalStatus = (0x7f << 1) | 1;  // the runtime's debug-exit after FATAL
constexpr int kCrashStatus = 12;               // SHUTDOWN_crash and SHUTDOWN_watchdog

std::string image_name(const ::testing::TestParamInfo<XenImage>& info) {
  std::string n = info.param.file;
  std::replace(n.begin(), n.end(), '.', '_');
  return n;
}

// Boots an image; a plain ELF gets no --cmdline (it could not see one, and evmm would warn).
ProcessResult run_guest(const XenImage& img, const std::string& words, unsigned cpus, bool xen,
                        std::vector<std::string> extra = {}) {
  std::vector<std::string> args{"run", "--kernel", guest(img.file), "--cpus", std::to_string(cpus)};
  if (xen) args.push_back("--xen");
  if (img.pvh && !words.empty()) {
    args.push_back("--cmdline");
    args.push_back(words);
  }
  args.insert(args.end(), extra.begin(), extra.end());
  return evmm(args);
}

// The guest's output as lines, searched in order: each expect() starts after the line the previous one
// matched, so the lines must also come in the documented order.
class Lines {
 public:
  explicit Lines(const std::string& out) {
    std::istringstream in(out);
    for (std::string line; std::getline(in, line);) lines_.push_back(line);
  }

  // The next line that matches re whole (or, with anywhere, contains a match: for a line that may
  // follow partial text the guest printed on purpose).
  std::optional<std::smatch> expect(const std::string& re, bool anywhere = false) {
    std::regex r(re);
    for (size_t i = next_; i < lines_.size(); ++i) {
      std::smatch m;
      if (anywhere ? std::regex_search(lines_[i], m, r) : std::regex_match(lines_[i], m, r)) {
        next_ = i + 1;
        return m;
      }
    }
    ADD_FAILURE() << "no line matching '" << re << "' after line " << next_;
    return std::nullopt;
  }

 private:
  std::vector<std::string> lines_;
  size_t next_ = 0;
};

unsigned long num(const std::optional<std::smatch>& m, size_t i) { return m ? std::stoul((*m)[i].str()) : 0; }

// The lines of the implicit hello, and the default list (guests/README.md, "xen").
void expect_default_list(const XenImage& img, unsigned cpus, const ProcessResult& r) {
  SCOPED_TRACE(fmt::format("{} on {} cpus\n--- stdout\n{}--- stderr\n{}", img.file, cpus, r.out, r.err));
  EXPECT_EQ(r.exit_status, 0);
  EXPECT_FALSE(has(r.out, "FAIL"));
  EXPECT_FALSE(has(r.out, "FATAL"));
  Lines lines(r.out);
  lines.expect(fmt::format(
      "xen: XenVMMXenVMM [0-9]+\\.[0-9]+\\S* leaf 0x4000[0-9a-f]{{2}}00 msr 0x[0-9a-f]+ pages [1-4] "
      "domid ([0-9]+|none) width {} boot {}",
      img.width, img.pvh ? "pvh" : "elf"));
  lines.expect(fmt::format("xen: shared_info 0x[0-9a-f]+ vcpu_info registered on {} cpus, upcall vector 0xf3", cpus));
  lines.expect("console: split write ok");
  lines.expect("console: fault -14 ok, huge -14 ok", true);
  lines.expect(cpus >= 2 ? "ipi: 20 round trips between cpu 0 and cpu 1 ok" : "ipi: skipped \\(1 cpu\\)");
  auto loop = lines.expect("loopback: ([0-9]+) <-> ([0-9]+) ok");
  EXPECT_NE(num(loop, 1), num(loop, 2));
  auto fired = lines.expect("timer: fired after ([0-9]+) us");
  EXPECT_GE(num(fired, 1), 9000u);  // 10 ms, less the guest's 1 ms allowance for clock skew
  EXPECT_LT(num(fired, 1), 2000000u);
  auto op = lines.expect("timer: set_timer_op fired after ([0-9]+) us");
  EXPECT_GE(num(op, 1), 4000u);
  EXPECT_LT(num(op, 1), 2000000u);
  lines.expect("timer: stop ok");
  lines.expect("mask: pending while masked, delivered on unmask");
  // The 2-level ABI has 4096 ports (1024 for a 32-bit guest), port 0 is reserved, and the ipi word left
  // each CPU's IPI port bound.
  unsigned held = cpus >= 2 ? 2 : 0, ports = img.width == 64 ? 4096 : 1024;
  lines.expect(fmt::format("exhaust: {} ports \\({} already bound\\) then -ENOSPC, all closed", ports - 1 - held, held));
  lines.expect("rebind: eexist einval enoent ok, rebound port ([0-9]+) \\(was ([0-9]+)\\)");
  auto poll = lines.expect("poll: timeout after ([0-9]+) us, pending port returned after ([0-9]+) us");
  EXPECT_GE(num(poll, 1), 19000u);
  EXPECT_LT(num(poll, 2), 100000u);
}

class XenEachImage : public ::testing::TestWithParam<XenImage> {};
class XenPvhImage : public ::testing::TestWithParam<XenImage> {};

TEST_P(XenEachImage, DefaultList) {
  REQUIRE_KVM();
  expect_default_list(GetParam(), 2, run_guest(GetParam(), "", 2, true));
}

TEST_P(XenEachImage, DefaultListOnOneCpu) {
  REQUIRE_KVM();
  expect_default_list(GetParam(), 1, run_guest(GetParam(), "", 1, true));
}

// What `make run-xen` shows: the words it passes, without progress lines, ending in a poweroff.
TEST(XenGuest, RunXenTourIsQuietAndPowersOff) {
  REQUIRE_KVM();
  auto r = run_guest(kPvhImages[0], "quiet hello ipi loopback timer mask poll block exhaust rebind", 2, true);
  EXPECT_EQ(r.exit_status, 0) << r.out << r.err;
  EXPECT_FALSE(has(r.out, "-- ")) << r.out;
  for (const char* line : {"ipi: 20 round trips between cpu 0 and cpu 1 ok", "mask: pending while masked, delivered on unmask",
                           "block: woke after", "rebind: eexist einval enoent ok"})
    EXPECT_TRUE(has(r.out, line)) << line << "\n" << r.out;
}

// The CPUID flags: Xen's leaves after KVM's at 0x40000100, another version, another domid; the
// guest scans in steps of 0x100 as Linux does and reports what it found.
TEST(XenGuest, CpuidLeavesVersionAndDomidAreConfigurable) {
  REQUIRE_KVM();
  auto r = run_guest(kPvhImages[0], "hello", 1, true, {"--xen-after-kvm", "--xen-version", "4.19", "--xen-domid", "7"});
  EXPECT_EQ(r.exit_status, 0) << r.out << r.err;
  EXPECT_TRUE(has(r.out, "xen: XenVMMXenVMM 4.19.0 leaf 0x40000100 msr 0x40000000 pages 1 domid 7 width 64 boot pvh\n"))
      << r.out;
  auto bad = evmm({"run", "--kernel", guest("xen64.pvh.elf"), "--xen", "--xen-version", "4"});
  EXPECT_EQ(bad.exit_status, 2);
  EXPECT_TRUE(has(bad.err, "--xen-version wants MAJOR.MINOR")) << bad.err;
  auto without = evmm({"run", "--kernel", guest("xen64.pvh.elf"), "--xen-domid", "3"});
  EXPECT_EQ(without.exit_status, 2) << "the Xen options need --xen";
}

// No Xen CPUID leaves: the guest says so on COM1 and leaves by debug-exit. An image with neither the
// PVH note nor a multiboot header is loaded as a plain ELF (evmm -v names the format) and still runs.
TEST(XenGuest, NoXenWithoutTheFlag) {
  REQUIRE_KVM();
  for (const auto& img : kAllImages) {
    auto r = run_guest(img, "", 1, false, {"-v"});
    EXPECT_EQ(r.exit_status, kNoXenStatus) << img.file << "\n" << r.out << r.err;
    EXPECT_TRUE(has(r.out, "xen: not found\n")) << img.file << "\n" << r.out;
    EXPECT_TRUE(has(r.err, fmt::format("{}: {} image, entry 0x", guest(img.file), img.pvh ? "PVH" : "ELF")))
        << img.file << "\n" << r.err;
  }
}

// The runtime under the guest, without Xen: AP start-up, IPIs and the LAPIC timer, for the 32-bit
// runtime (rt32) as for the 64-bit one.
TEST_P(XenPvhImage, RuntimeCheckWithoutXen) {
  REQUIRE_KVM();
  for (unsigned cpus : {1u, 2u}) {
    auto r = run_guest(GetParam(), "rtcheck", cpus, false);
    EXPECT_EQ(r.exit_status, kNoXenStatus) << r.out << r.err;
    EXPECT_TRUE(has(r.out, fmt::format("rtcheck: {} cpus up, {} ipis, lapic timer ok", cpus, cpus - 1))) << r.out;
    EXPECT_TRUE(has(r.out, "xen: not found\n")) << r.out;
  }
}

TEST_P(XenPvhImage, UnexpectedExceptionWithoutXen) {
  REQUIRE_KVM();
  auto r = run_guest(GetParam(), "rtcheck-ud", 1, false);
  EXPECT_EQ(r.exit_status, kFatalStatus) << r.out << r.err;
  EXPECT_TRUE(has(r.out, "FATAL: unexpected #UD vector 6 ")) << r.out;
}

// After setup an unexpected exception is reported as a crash (SHUTDOWN_crash).
TEST_P(XenPvhImage, UnexpectedExceptionIsACrash) {
  REQUIRE_KVM();
  auto r = run_guest(GetParam(), "fatal", 1, true);
  EXPECT_EQ(r.exit_status, kCrashStatus) << r.out << r.err;
  EXPECT_TRUE(has(r.out, "FATAL: unexpected #UD vector 6 ")) << r.out;
}

// SCHEDOP_shutdown's reasons and evmm's exit statuses: poweroff 0, reboot a reset (10 with
// --on-reset exit), crash and watchdog 12, suspend 16.
TEST(XenGuest, ShutdownReasons) {
  REQUIRE_KVM();
  struct Case {
    const char* reason;
    int status;
  };
  for (const auto& img : kPvhImages) {
    for (auto [reason, status] : {Case{"poweroff", 0}, Case{"reboot", 10}, Case{"crash", kCrashStatus},
                                  Case{"watchdog", kCrashStatus}, Case{"suspend", 16}}) {
      auto r = run_guest(img, fmt::format("shutdown={}", reason), 1, true, {"--on-reset", "exit"});
      EXPECT_EQ(r.exit_status, status) << img.file << " " << reason << "\n" << r.out << r.err;
      EXPECT_FALSE(has(r.out, "shutdown: returned")) << img.file << " " << reason << "\n" << r.out;
    }
  }
}

TEST_P(XenPvhImage, UnknownWordIsACrash) {
  REQUIRE_KVM();
  auto r = run_guest(GetParam(), "hello bogus timer", 1, true);
  EXPECT_EQ(r.exit_status, kCrashStatus) << r.out << r.err;
  EXPECT_TRUE(has(r.out, "FAIL word: unknown 'bogus'\n")) << r.out;
  EXPECT_FALSE(has(r.out, "timer:")) << r.out;
}

TEST_P(XenPvhImage, IpiRoundTrips) {
  REQUIRE_KVM();
  auto r = run_guest(GetParam(), "ipi n=5", 2, true);
  EXPECT_EQ(r.exit_status, 0) << r.out << r.err;
  EXPECT_TRUE(has(r.out, "ipi: 5 round trips between cpu 0 and cpu 1 ok\n")) << r.out;
}

// Every interrupt the 32-bit runtime takes ends in a 32-bit iret (rt32's isr32.S), which this host's
// KVM emulator cannot run at CPL0: evmm completes each one and counts it in --stats. Five IPI round
// trips are at least ten upcalls, one on each CPU per trip. The 64-bit runtime's iretq never reaches evmm.
TEST_P(XenPvhImage, InterruptReturnsAreIretAssists) {
  REQUIRE_KVM();
  auto r = run_guest(GetParam(), "ipi n=5", 2, true, {"--stats"});
  EXPECT_EQ(r.exit_status, 0) << r.out << r.err;
  EXPECT_TRUE(has(r.out, "ipi: 5 round trips between cpu 0 and cpu 1 ok\n")) << r.out;
  std::smatch m;
  unsigned irets = std::regex_search(r.err, m, std::regex(" iret=([0-9]+)")) ? std::stoul(m[1]) : 0;
  if (GetParam().width == 64) {
    EXPECT_EQ(irets, 0u) << r.err;
    return;
  }
  if (irets == 0) GTEST_SKIP() << "this host runs a 32-bit iret at CPL0 without the VMM";
  EXPECT_GE(irets, 10u) << r.err;
}

// A 64-bit guest's 32-bit compatibility-mode code calls the same stubs and gets 32-bit results: no
// stub byte may decode differently there (a REX prefix is dec, and movslq is arpl, which stopped
// the VM before the stubs wrote the port instead).
TEST_P(XenPvhImage, HypercallsFromCompatibilityMode) {
  REQUIRE_KVM();
  auto r = run_guest(GetParam(), "compat", 1, true);
  EXPECT_EQ(r.exit_status, 0) << r.out << r.err;
  if (GetParam().width == 64)
    EXPECT_TRUE(has(r.out, "compat: xen_version 0x40011 and -ENOSYS from compatibility mode, -38 from 64-bit mode; ok\n"))
        << r.out;
  else
    EXPECT_TRUE(has(r.out, "compat: a 32-bit guest has no compatibility mode; skipped\n")) << r.out;
}

// An interrupt KVM raises by itself (the in-kernel LAPIC timer) ends SCHEDOP_block too.
TEST_P(XenPvhImage, BlockWakesOnTheLapicTimer) {
  REQUIRE_KVM();
  auto r = run_guest(GetParam(), "block-lapic", 1, true);
  SCOPED_TRACE(r.out + r.err);
  EXPECT_EQ(r.exit_status, 0);
  Lines lines(r.out);
  auto m = lines.expect("block-lapic: woke after ([0-9]+) us, lapic timer handler ran ([0-9]+)");
  EXPECT_GE(num(m, 1), 5000u);
  EXPECT_EQ(num(m, 2), 1u);
}

TEST_P(XenPvhImage, BlockWakesOnTheTimer) {
  REQUIRE_KVM();
  auto r = run_guest(GetParam(), "block", 1, true);
  SCOPED_TRACE(r.out + r.err);
  EXPECT_EQ(r.exit_status, 0);
  Lines lines(r.out);
  auto m = lines.expect("block: woke after ([0-9]+) us, timer handler ran ([0-9]+)");
  EXPECT_GE(num(m, 1), 9000u);
  EXPECT_GE(num(m, 2), 1u);
}

TEST_P(XenPvhImage, BenchLines) {
  REQUIRE_KVM();
  auto r = run_guest(GetParam(), "bench-ipi n=20", 2, true);
  SCOPED_TRACE(r.out + r.err);
  EXPECT_EQ(r.exit_status, 0);
  Lines lines(r.out);
  auto ipi = lines.expect(
      "bench-ipi: 20 send->handler p50 ([0-9]+) p99 ([0-9]+) cycles, round trip p50 ([0-9]+) p99 ([0-9]+) cycles");
  EXPECT_LE(num(ipi, 1), num(ipi, 2));
  EXPECT_LE(num(ipi, 3), num(ipi, 4));
  EXPECT_LT(num(ipi, 1), num(ipi, 3));  // the handler on cpu 1 runs before cpu 0 sees the answer
  auto exit = lines.expect("bench-exit: 20 pio round trip p50 ([0-9]+) p99 ([0-9]+) cycles");
  EXPECT_LE(num(exit, 1), num(exit, 2));
  auto tsc = lines.expect("bench: tsc ([0-9]+) kHz");
  EXPECT_GT(num(tsc, 1), 100000u);  // above 100 MHz
}

INSTANTIATE_TEST_SUITE_P(XenGuest, XenEachImage, ::testing::ValuesIn(kAllImages), image_name);
INSTANTIATE_TEST_SUITE_P(XenGuest, XenPvhImage, ::testing::ValuesIn(kPvhImages), image_name);

}  // namespace
}  // namespace evmm::testing
