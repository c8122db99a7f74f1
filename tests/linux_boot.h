// Booting Linux guests in the long KVM tests (linux_guest_test.cpp, linux_virtio_test.cpp): the
// images the scripts build or fetch, and one evmm run watched through its serial file.
#pragma once

#include <signal.h>

#include <chrono>
#include <fstream>
#include <map>
#include <string>
#include <thread>
#include <vector>

#include "testing/serial_file.h"
#include "tests/kvm_test_util.h"

namespace evmm::testing {

struct BuiltImage {
  int status = -1;
  std::string path;  // what the script printed, when status is 0
  std::string err;
};

// Runs scripts/NAME OUT_DIR, which prints the image it built, fetched or found in its cache.
inline BuiltImage built_image(const std::string& script, const std::string& dir) {
  ProcessOptions opts;
  opts.timeout = std::chrono::hours(1);  // a guest kernel build when no fixture made it first
  auto r = run_process({std::string(EVMM_SOURCE_DIR) + "/scripts/" + script, dir}, opts);
  BuiltImage k{r.exit_status, r.out, r.err};
  while (!k.path.empty() && k.path.back() == '\n') k.path.pop_back();
  return k;
}

inline bool process_exited(pid_t pid) {
  std::ifstream stat("/proc/" + std::to_string(pid) + "/stat");
  std::string line;
  if (!std::getline(stat, line)) return true;
  auto close = line.rfind(')');
  return close == std::string::npos || close + 2 >= line.size() || line[close + 2] == 'Z';
}

struct LinuxBootOptions {
  std::string image;
  std::string cmdline;
  unsigned cpus = 1;
  std::string until;  // the serial line that ends the boot (then SIGTERM, a clean stop)
  std::chrono::minutes guard{20};
  std::vector<std::string> extra;  // more evmm options (devices)
  std::vector<std::string> marks;  // serial lines whose first appearance is timed
};

struct LinuxBoot {
  ProcessResult r;
  std::string serial;
  bool reached = false;               // the serial output showed `until`
  double seconds = 0;                 // wall time of the boot, reported for the record
  std::map<std::string, double> at;   // wall seconds at which each mark was first seen (200 ms steps)
};

// Boots the image until its serial output shows `until` or evmm stops by itself. At the guard
// timeout evmm gets SIGUSR2 (the register dump, on stderr) and then SIGKILL.
inline LinuxBoot boot_linux(const LinuxBootOptions& o) {
  SerialFile serial;
  EXPECT_EQ(serial.create("evmm-linux"), "");
  LinuxBoot b;
  ProcessOptions opts;
  opts.timeout = o.guard;
  opts.timeout_signal = SIGUSR2;
  auto start = std::chrono::steady_clock::now();
  auto now = [&] { return std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count(); };
  opts.while_running = [&](pid_t pid) {
    while (!process_exited(pid)) {
      std::string s = serial.contents();
      for (const auto& m : o.marks)
        if (!b.at.count(m) && has(s, m)) b.at[m] = now();
      if (has(s, o.until)) {
        b.reached = true;
        ::kill(pid, SIGTERM);
        return;
      }
      std::this_thread::sleep_for(std::chrono::milliseconds(200));
    }
  };
  std::vector<std::string> args{"run",   "--kernel", o.image, "--cmdline", o.cmdline,
                                "--cpus", std::to_string(o.cpus), "--memory", "512", "--stats",
                                "--serial", "file:" + serial.path()};
  args.insert(args.end(), o.extra.begin(), o.extra.end());
  b.r = evmm(args, opts);
  b.seconds = now();
  b.serial = serial.contents();
  b.reached = b.reached || has(b.serial, o.until);
  return b;
}

inline std::string tail(const std::string& s, size_t n = 3000) { return s.size() > n ? s.substr(s.size() - n) : s; }

}  // namespace evmm::testing
