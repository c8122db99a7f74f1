// Shared pieces of the KVM integration tests.
#pragma once

#include <gtest/gtest.h>
#include <sys/stat.h>
#include <unistd.h>

#include <fmt/format.h>

#include <algorithm>
#include <chrono>
#include <fstream>
#include <regex>
#include <sstream>
#include <string>
#include <thread>
#include <vector>

#include "testing/process.h"

namespace evmm::testing {

inline bool has(const std::string& hay, const std::string& needle) { return hay.find(needle) != std::string::npos; }
inline size_t count_lines(const std::string& s) { return static_cast<size_t>(std::count(s.begin(), s.end(), '\n')); }

// A file's whole contents ("" when it cannot be read).
inline std::string slurp(const std::string& path) {
  std::ifstream f(path, std::ios::binary);
  std::stringstream s;
  s << f.rdbuf();
  return s.str();
}
// Waits up to 10 s for a listening Unix socket at path (a daemon started on another thread).
inline bool wait_for_socket(const std::string& path) {
  for (int i = 0; i < 200; ++i) {
    struct stat st;
    if (::stat(path.c_str(), &st) == 0 && S_ISSOCK(st.st_mode)) return true;
    std::this_thread::sleep_for(std::chrono::milliseconds(50));
  }
  return false;
}
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

// What `evmm run --stats` printed on stderr: how often evmm completed an assist kind ("cmpxchg16b")
// and injected a fault vector ("PF"); 0 when the kind or vector is absent.
inline unsigned stats_count(const std::string& err, const std::string& pattern) {
  std::smatch m;
  if (std::regex_search(err, m, std::regex(pattern))) return static_cast<unsigned>(std::stoul(m[1]));
  return 0;
}
inline unsigned assists(const std::string& err, const std::string& kind) {
  return stats_count(err, "assists:[^\n]* " + kind + "=([0-9]+)");
}
inline unsigned injected(const std::string& err, const std::string& vector) {
  return stats_count(err, "injected_faults:[^\n]* #" + vector + "=([0-9]+)");
}

}  // namespace evmm::testing
