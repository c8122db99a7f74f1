// Runs a program as a child process with optional stdin and a deadline, capturing its output.
// For integration tests that drive the real evmm binary.
#pragma once

#include <sys/types.h>

#include <chrono>
#include <functional>
#include <string>
#include <vector>

namespace evmm::testing {

struct ProcessResult {
  int exit_status = -1;  // the exit status, or 128 + signal when killed
  bool timed_out = false;
  std::string out, err;
};

struct ProcessOptions {
  std::string stdin_data;
  bool close_stdin = true;  // EOF after stdin_data
  std::string stdin_file;   // if set, stdin is this file instead (stdin_data is ignored)
  std::chrono::milliseconds timeout{60000};
  // Sent at timeout; SIGKILL follows 5 s later if the child is still there.
  int timeout_signal = 9;
  // Runs on its own thread while the child does (to inspect /proc/<pid>, send signals); joined
  // before run_process returns.
  std::function<void(pid_t)> while_running;
};

ProcessResult run_process(const std::vector<std::string>& argv, const ProcessOptions& opts = {});

}  // namespace evmm::testing
