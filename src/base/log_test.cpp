#include "base/log.h"

#include <gtest/gtest.h>
#include <unistd.h>

#include <algorithm>
#include <cstdio>
#include <fstream>
#include <sstream>
#include <thread>

namespace evmm {
namespace {

// Captures what the process writes to stderr while it lives.
class StderrCapture {
 public:
  StderrCapture() : path_(::testing::TempDir() + "/log-capture-" + std::to_string(::getpid())) {
    std::fflush(stderr);
    saved_ = ::dup(STDERR_FILENO);
    FILE* f = std::fopen(path_.c_str(), "w");
    ::dup2(::fileno(f), STDERR_FILENO);
    std::fclose(f);
  }
  std::string finish() {
    ::dup2(saved_, STDERR_FILENO);
    ::close(saved_);
    std::ifstream in(path_);
    std::stringstream ss;
    ss << in.rdbuf();
    ::unlink(path_.c_str());
    return ss.str();
  }

 private:
  std::string path_;
  int saved_;
};

size_t lines(const std::string& s) { return size_t(std::count(s.begin(), s.end(), '\n')); }

// A guest that provokes a warning on every exit cannot make evmm write without bound: the burst
// goes out, the rest is dropped and counted, and the next line that goes out says so.
TEST(Log, OutputIsRateBounded) {
  uint64_t dropped0 = log_lines_dropped();
  StderrCapture cap;
  for (int i = 0; i < 5 * kLogBurst; ++i) LOG_WARN("line {}", i);
  std::this_thread::sleep_for(std::chrono::milliseconds(50));  // room for a few lines again
  LOG_WARN("after the flood");
  std::string out = cap.finish();
  EXPECT_LE(lines(out), size_t(kLogBurst) + 20) << out.substr(0, 200);
  EXPECT_GE(log_lines_dropped() - dropped0, uint64_t(4 * kLogBurst - 20));
  EXPECT_NE(out.find("log lines dropped (at most 100 a second)\nevmm: warn: after the flood\n"), std::string::npos);
}

}  // namespace
}  // namespace evmm
