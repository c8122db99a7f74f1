// The evmm command line: version, caps, usage errors and images refused before any guest runs.
#include <gtest/gtest.h>

#include <cstdio>
#include <fstream>

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

}  // namespace
}  // namespace evmm::testing
