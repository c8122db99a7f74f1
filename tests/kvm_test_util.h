// Shared pieces of the KVM integration tests.
#pragma once

#include <gtest/gtest.h>
#include <unistd.h>

#include <fmt/format.h>

#include <algorithm>
#include <string>
#include <vector>

#include "testing/process.h"

namespace evmm::testing {

inline bool has(const std::string& hay, const std::string& needle) { return hay.find(needle) != std::string::npos; }
inline size_t count_lines(const std::string& s) { return static_cast<size_t>(std::count(s.begin(), s.end(), '\n')); }

inline std::string guest(const std::string& name) { return std::string(EVMM_GUEST_DIR) + "/" + name; }

// Skips the calling test, with the reason, when this host has no usable /dev/kvm.
#define REQUIRE_KVM()                                                           \
  do {                                                                          \
    if (::access("/dev/kvm", R_OK | W_OK) != 0)                                 \
      GTEST_SKIP() << "/dev/kvm is not available on this host: KVM test skipped"; \
  } while (0)

inline ProcessResult evmm(std::vector<std::string> args, const ProcessOptions& opts = {}) {
  args.insert(args.begin(), EVMM_BINARY);
  return run_process(args, opts);
}

// Boots a guest image with a command line, serial on stdout.
inline ProcessResult boot(const std::string& image, const std::string& cmdline, unsigned cpus = 1,
                          std::vector<std::string> extra = {}, const ProcessOptions& opts = {}) {
  std::vector<std::string> args{"run", "--kernel", guest(image), "--cmdline", cmdline, "--cpus", std::to_string(cpus)};
  args.insert(args.end(), extra.begin(), extra.end());
  return evmm(args, opts);
}

}  // namespace evmm::testing
