// The vhost-user-blk peer tests' common scaffolding: a scratch image and socket, and a backend
// process (qemu-storage-daemon or `evmm device blk`) serving it while the test's work runs.
#pragma once

#include <signal.h>

#include <functional>
#include <string>

#include "testing/vhost_blk_driver.h"
#include "tests/kvm_test_util.h"

namespace evmm::testing {

// A scratch directory holding a 1 MiB zeroed disk image and the path of a socket beside it.
struct BlkScratch : TempDir {
  std::string disk, sock;
  BlkScratch() : TempDir("evmm-vhost-blk"), disk(*this / "disk.img"), sock(*this / "blk.sock") {
    std::ofstream(disk, std::ios::binary) << std::string(1 << 20, '\0');
  }
};

// qemu-storage-daemon exports s.disk on s.sock while work runs (on another thread), then is stopped.
inline ProcessResult with_qemu_storage_daemon(const BlkScratch& s, const std::function<void()>& work,
                                              std::chrono::seconds timeout = std::chrono::seconds(60)) {
  ProcessOptions opts;
  opts.timeout = timeout;
  opts.while_running = [&](pid_t pid) {
    work();
    ::kill(pid, SIGTERM);
  };
  return run_process(qsd_blk_export(s.disk, s.sock), opts);
}

// `evmm device blk --stats` serves s.disk on s.sock while work runs; it exits when its frontend goes.
inline ProcessResult with_evmm_device_blk(const BlkScratch& s, const std::function<void()>& work) {
  ProcessOptions opts;
  opts.timeout = std::chrono::seconds(60);
  opts.while_running = [&](pid_t) { work(); };
  return run_process({EVMM_BINARY, "device", "blk", "--socket", s.sock, "--disk", "path=" + s.disk, "--stats"}, opts);
}

}  // namespace evmm::testing
