// Booting real guests on /dev/kvm through the evmm binary: every boot protocol, 1 and 2 vCPUs,
// serial output and input, debug-exit codes, poweroff, reset and guest faults.
#include <gtest/gtest.h>

#include <fmt/format.h>

#include <fstream>
#include <numeric>
#include <ctime>
#include <regex>
#include <set>
#include <csignal>

#include "tests/kvm_test_util.h"

namespace evmm::testing {
namespace {

struct Image {
  const char* file;
  const char* protocol;  // as the guest names the protocol that booted it
};

class BootEachFormat : public ::testing::TestWithParam<Image> {};

TEST_P(BootEachFormat, HelloOnOneAndTwoCpus) {
  REQUIRE_KVM();
  for (unsigned cpus : {1u, 2u}) {
    auto r = boot(GetParam().file, "hello smp exit=3", cpus);
    EXPECT_EQ(r.exit_status, 7) << r.out << r.err;  // (3 << 1) | 1
    EXPECT_TRUE(has(r.out, fmt::format("hello from {} on {} cpus", GetParam().protocol, cpus))) << r.out;
    EXPECT_TRUE(has(r.out, fmt::format("smp: {} cpus up", cpus))) << r.out;
    EXPECT_TRUE(r.err.empty()) << r.err;
  }
}

INSTANTIATE_TEST_SUITE_P(Formats, BootEachFormat,
                         ::testing::Values(Image{"testprog.mb.elf", "multiboot"}, Image{"testprog.mb.bin", "multiboot"},
                                           Image{"testprog.pvh.elf", "pvh"}),
                         [](const auto& info) {
                           std::string n = info.param.file;
                           std::replace(n.begin(), n.end(), '.', '_');
                           return n;
                         });

TEST(Boot, DebugExitStatusIsValueShiftedOrOne) {
  REQUIRE_KVM();
  for (unsigned v : {0u, 1u, 42u, 127u}) {
    auto r = boot("testprog.mb.elf", fmt::format("exit={}", v));
    EXPECT_EQ(r.exit_status, static_cast<int>(((v << 1) | 1) & 0xff)) << v << r.err;
  }
}

TEST(Boot, AcpiPowerOffExitsZero) {
  REQUIRE_KVM();
  auto r = boot("testprog.pvh.elf", "hello poweroff", 2);
  EXPECT_EQ(r.exit_status, 0) << r.err;
  EXPECT_TRUE(r.err.empty()) << r.err;
}

TEST(Boot, ResetWithOnResetExit) {
  REQUIRE_KVM();
  auto r = boot("testprog.mb.elf", "hello reset", 1, {"--on-reset", "exit"});
  EXPECT_EQ(r.exit_status, 10) << r.err;
  EXPECT_TRUE(has(r.err, "reset")) << r.err;
}

// With --on-reset reset the VM boots again, from scratch, until something else stops it.
TEST(Boot, ResetBootsAgainAndSigtermStops) {
  REQUIRE_KVM();
  ProcessOptions opts;
  opts.timeout = std::chrono::milliseconds(4000);
  opts.timeout_signal = SIGTERM;
  auto r = boot("testprog.mb.elf", "hello reset", 1, {}, opts);
  EXPECT_EQ(r.exit_status, 130) << r.err;
  size_t boots = 0;
  for (size_t at = 0; (at = r.out.find("hello from multiboot", at)) != std::string::npos; ++at) ++boots;
  EXPECT_GE(boots, 2u) << r.out;
}

TEST(Boot, TripleFaultIsAGuestFault) {
  REQUIRE_KVM();
  auto r = boot("testprog.mb.elf", "triplefault");
  EXPECT_EQ(r.exit_status, 8) << r.err;
  // One line, then the register dump of the vCPU that stopped: the guest loaded an empty IDT and
  // executed ud2, whose #UD and #DF had nowhere to go.
  ASSERT_TRUE(r.err.rfind("evmm: vCPU 0: guest triple fault", 0) == 0) << r.err;
  EXPECT_TRUE(has(r.err, "\n  vCPU 0: ")) << r.err;
  EXPECT_TRUE(has(r.err, "CPL=0 64-bit")) << r.err;
  EXPECT_TRUE(has(r.err, "IDT=base 0000000000000000 limit 0000")) << r.err;
  EXPECT_TRUE(has(r.err, "EFER=0000000000000500")) << r.err;  // LME | LMA
  EXPECT_TRUE(has(r.err, ": 0f 0b ")) << r.err;                // the bytes at RIP: ud2
  size_t first_end = r.err.find('\n');
  for (size_t pos = first_end + 1; pos < r.err.size(); pos = r.err.find('\n', pos) + 1)
    EXPECT_EQ(r.err.compare(pos, 2, "  "), 0) << "a dump line not indented at " << pos << ":\n" << r.err;
  EXPECT_GE(count_lines(r.err), 18u) << r.err;
}

TEST(Boot, SerialToFile) {
  REQUIRE_KVM();
  std::string path = ::testing::TempDir() + "/serial.out";
  auto r = boot("testprog.mb.elf", "hello exit=0", 1, {"--serial", "file:" + path});
  EXPECT_EQ(r.exit_status, 1);
  EXPECT_TRUE(r.out.empty()) << r.out;
  std::ifstream f(path);
  std::string text((std::istreambuf_iterator<char>(f)), {});
  EXPECT_TRUE(has(text, "hello from multiboot on 1 cpus")) << text;
}

TEST(Boot, SerialNoneIsSilent) {
  REQUIRE_KVM();
  auto r = boot("testprog.mb.elf", "hello exit=0", 1, {"--serial", "none"});
  EXPECT_EQ(r.exit_status, 1);
  EXPECT_TRUE(r.out.empty()) << r.out;
}

TEST(Boot, SerialInputFromAPipe) {
  REQUIRE_KVM();
  ProcessOptions opts;
  // More than the UART's FIFO holds, so the feeder must wait for the guest to drain it.
  std::string line(100, 'x');
  line += "end";
  opts.stdin_data = line + "\n";
  auto r = boot("testprog.mb.elf", "serial exit=0", 1, {}, opts);
  EXPECT_EQ(r.exit_status, 1) << r.err;
  EXPECT_TRUE(has(r.out, "serial: got " + line)) << r.out;
}

// A regular file as stdin: epoll refuses it, so the console reads it chunk by chunk on the event loop.
TEST(Boot, SerialInputFromARegularFile) {
  REQUIRE_KVM();
  ProcessOptions opts;
  opts.stdin_file = ::testing::TempDir() + "/serial-input.txt";
  std::ofstream(opts.stdin_file) << "first line\nsecond line\n";
  auto r = boot("testprog.mb.elf", "serial serial exit=0", 1, {}, opts);
  EXPECT_EQ(r.exit_status, 1) << r.err;
  EXPECT_TRUE(has(r.out, "serial: got first line\nserial: got second line\n")) << r.out;
}

TEST(Boot, InitrdBecomesModuleZero) {
  REQUIRE_KVM();
  std::string path = ::testing::TempDir() + "/initrd.bin";
  std::string data;
  for (int i = 0; i < 10000; ++i) data.push_back(static_cast<char>(i * 7));
  std::ofstream(path, std::ios::binary) << data;
  uint32_t sum = std::accumulate(data.begin(), data.end(), 0u, [](uint32_t a, char c) { return a + uint8_t(c); });
  for (const char* image : {"testprog.mb.elf", "testprog.pvh.elf"}) {
    auto r = boot(image, "modules exit=0", 1, {"--initrd", path});
    EXPECT_EQ(r.exit_status, 1) << r.err;
    EXPECT_TRUE(has(r.out, fmt::format("module 0 size {} sum {:#x}", data.size(), sum))) << image << "\n" << r.out;
  }
}

TEST(Boot, FirmwareTablesValidateInTheGuest) {
  REQUIRE_KVM();
  for (unsigned cpus : {1u, 2u}) {
    auto r = boot("testprog.pvh.elf", "acpi exit=0", cpus);
    EXPECT_EQ(r.exit_status, 1) << r.out << r.err;
    EXPECT_TRUE(has(r.out, fmt::format("acpi: ok {} cpus", cpus))) << r.out;
  }
}

TEST(Boot, InterruptsAndExceptionsAtCpl0) {
  REQUIRE_KVM();
  auto r = boot("testprog.mb.elf", "irq exit=0");
  EXPECT_EQ(r.exit_status, 1) << r.out << r.err;
  EXPECT_TRUE(has(r.out, "exc: ud ok")) << r.out;
  EXPECT_TRUE(has(r.out, "exc: de ok")) << r.out;
  EXPECT_TRUE(std::regex_search(r.out, std::regex("irq: [1-9][0-9]* ticks"))) << r.out;
}

}  // namespace
}  // namespace evmm::testing

namespace evmm::testing {
namespace {

// Each vCPU reads its own APIC ID from CPUID leaves 1 and 0xB; they must be distinct and match.
TEST(Boot, PerVcpuApicIdsInCpuid) {
  REQUIRE_KVM();
  auto r = boot("testprog.pvh.elf", "smp cpuid exit=0", 2);
  EXPECT_EQ(r.exit_status, 1) << r.out << r.err;
  std::set<unsigned> ids;
  std::regex line("cpuid: cpu [0-9]+ vendor \\S+ hypervisor (\\S+) apic ([0-9]+) x2apic ([0-9]+)");
  for (auto it = std::sregex_iterator(r.out.begin(), r.out.end(), line); it != std::sregex_iterator(); ++it) {
    EXPECT_EQ((*it)[2], (*it)[3]) << it->str();
    EXPECT_EQ((*it)[1], "KVMKVMKVM") << it->str();
    ids.insert(std::stoul((*it)[2]));
  }
  EXPECT_EQ(ids, (std::set<unsigned>{0, 1})) << r.out;
}

// The RTC tells the host's time (UTC) to the guest.
TEST(Boot, RtcHasRealTime) {
  REQUIRE_KVM();
  auto r = boot("testprog.mb.elf", "rtc exit=0");
  EXPECT_EQ(r.exit_status, 1) << r.err;
  std::smatch m;
  ASSERT_TRUE(std::regex_search(r.out, m, std::regex("rtc: (\\d{4})-(\\d\\d)-(\\d\\d) (\\d\\d):(\\d\\d):(\\d\\d)"))) << r.out;
  std::tm tm{};
  tm.tm_year = std::stoi(m[1]) - 1900;
  tm.tm_mon = std::stoi(m[2]) - 1;
  tm.tm_mday = std::stoi(m[3]);
  tm.tm_hour = std::stoi(m[4]);
  tm.tm_min = std::stoi(m[5]);
  tm.tm_sec = std::stoi(m[6]);
  time_t guest = timegm(&tm);
  EXPECT_LE(std::llabs(static_cast<long long>(guest - std::time(nullptr))), 5) << r.out;
}

TEST(Boot, FwCfgItemsMatchTheConfiguration) {
  REQUIRE_KVM();
  auto r = boot("testprog.mb.elf", "fwcfg exit=0", 2, {"--memory", "64"});
  EXPECT_EQ(r.exit_status, 1) << r.err;
  EXPECT_TRUE(has(r.out, "fwcfg: signature QEMU cpus 2 ram 0x4000000")) << r.out;
}

}  // namespace
}  // namespace evmm::testing

namespace evmm::testing {
namespace {

// The benchmark guest's first instruction writes 'R' to port 0xe9, then it halts for good; the
// debug console prints it where the serial console goes, and SIGTERM stops the VM cleanly.
TEST(Boot, DebugConsoleByteReachesStdout) {
  REQUIRE_KVM();
  ProcessOptions opts;
  opts.timeout = std::chrono::milliseconds(1500);
  opts.timeout_signal = SIGTERM;
  auto r = evmm({"run", "--kernel", EVMM_FIRST_INSN_GUEST, "--memory", "16"}, opts);
  EXPECT_EQ(r.out, "R");
  EXPECT_EQ(r.exit_status, 130) << r.err;
  EXPECT_TRUE(has(r.err, "signal 15")) << r.err;
}

// Issue 13: an image linked at 0x8000 loads there, and the boot data its bss covers moves elsewhere;
// the guest checks that its bss still reads zero and that EBX and the command line lie outside it.
TEST(Boot, ImageLinkedAt0x8000) {
  REQUIRE_KVM();
  auto r = evmm({"run", "--kernel", guest("lowmem.mb.elf"), "--cmdline", "low memory", "--memory", "16"});
  EXPECT_EQ(r.exit_status, 5) << r.out << r.err;  // (2 << 1) | 1
  EXPECT_EQ(r.out, "lowmem ok: low memory\n") << r.err;
}

}  // namespace
}  // namespace evmm::testing
