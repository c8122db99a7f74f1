// Shared pieces of the KVM integration tests.
#pragma once

#include <gtest/gtest.h>
#include <sys/stat.h>
#include <unistd.h>

#include <fmt/format.h>

#include <algorithm>
#include <chrono>
#include <filesystem>
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
// How many times what occurs in s, without overlaps.
inline size_t occurrences(const std::string& s, const std::string& what) {
  size_t n = 0;
  for (size_t at = s.find(what); at != std::string::npos; at = s.find(what, at + what.size())) ++n;
  return n;
}

// A file's whole contents ("" when it cannot be read).
inline std::string slurp(const std::string& path) {
  std::ifstream f(path, std::ios::binary);
  std::stringstream s;
  s << f.rdbuf();
  return s.str();
}
// A fresh directory under /tmp (path is empty if it could not be made), removed with what it holds.
struct TempDir {
  std::string path;
  explicit TempDir(const std::string& prefix = "evmm-test") {
    std::string t = "/tmp/" + prefix + "-XXXXXX";
    if (::mkdtemp(t.data())) path = t;
  }
  TempDir(const TempDir&) = delete;
  TempDir& operator=(const TempDir&) = delete;
  ~TempDir() {
    if (!path.empty()) std::filesystem::remove_all(path);
  }
  std::string operator/(const std::string& name) const { return path + "/" + name; }
};

// QEMU 7.2's microvm (TCG: no KVM needed) with our test guest, its modern virtio-mmio transports
// described in its DSDT, isa-debug-exit where testprog exits, and RAM in a shared memfd that
// vhost-user backends can map; devices are QEMU's options for the devices under test.
inline constexpr const char* kQemu = "/usr/bin/qemu-system-x86_64";
inline std::vector<std::string> qemu_microvm(const std::string& kernel, const std::string& append,
                                             const std::vector<std::string>& devices) {
  std::vector<std::string> argv{kQemu, "-M", "microvm,acpi=on,ioapic2=off,rtc=on,memory-backend=mem", "-m", "128",
                                "-object", "memory-backend-memfd,id=mem,size=128M,share=on", "-global",
                                "virtio-mmio.force-legacy=false", "-serial", "stdio", "-display", "none", "-no-reboot",
                                "-device", "isa-debug-exit,iobase=0xf4", "-kernel", kernel, "-append", append};
  argv.insert(argv.end(), devices.begin(), devices.end());
  return argv;
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
