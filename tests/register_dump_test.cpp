// The register dump a VMM developer asks a running evmm for (SIGUSR2): every vCPU's registers, MP
// state and code bytes on stderr, and the VM goes on as if nothing happened.
#include <gtest/gtest.h>
#include <signal.h>

#include <chrono>
#include <thread>

#include "testing/serial_file.h"
#include "tests/kvm_test_util.h"

namespace evmm::testing {
namespace {

// vCPU 0 suspends itself (evmm's Suspended state); vCPU 1 waits for INIT/SIPI in KVM. Two dumps,
// then the wake button: the guest resumes and ends with its debug-exit status, so the dumps
// stopped nothing. With --stats each dump carries the counters so far (a hang guard's last word).
TEST(RegisterDump, Sigusr2DumpsEveryVcpuWithoutStoppingTheVm) {
  REQUIRE_KVM();
  SerialFile serial;
  ASSERT_EQ(serial.create("evmm-dump"), "");
  bool suspended = false;
  ProcessOptions opts;
  opts.timeout = std::chrono::seconds(60);
  opts.while_running = [&](pid_t pid) {
    for (int i = 0; i < 3000 && !suspended; ++i) {
      suspended = has(serial.contents(), "pvsuspend: suspending");
      if (!suspended) std::this_thread::sleep_for(std::chrono::milliseconds(10));
    }
    for (int i = 0; i < 2; ++i) {
      ::kill(pid, SIGUSR2);
      std::this_thread::sleep_for(std::chrono::milliseconds(500));
    }
    ::kill(pid, SIGUSR1);
  };
  auto r = boot("testprog.mb.elf", "pvsuspend exit=0", 2, {"--serial", "file:" + serial.path(), "--stats"}, opts);
  ASSERT_TRUE(suspended) << serial.contents();
  EXPECT_FALSE(r.timed_out);
  EXPECT_EQ(r.exit_status, 1) << r.err;  // debug-exit 0 after the resume
  EXPECT_TRUE(has(serial.contents(), "pvsuspend: resumed")) << serial.contents();
  EXPECT_EQ(occurrences(r.err, "evmm: register dump (SIGUSR2)\n"), 2u) << r.err;
  EXPECT_EQ(occurrences(r.err, "\n  vCPU 0: runnable, evmm: suspended\n"), 2u) << r.err;
  EXPECT_EQ(occurrences(r.err, "\n  vCPU 1: uninitialized (waiting for INIT/SIPI)\n"), 2u) << r.err;
  EXPECT_EQ(occurrences(r.err, "CPL=0 64-bit"), 2u) << r.err;     // vCPU 0
  EXPECT_EQ(occurrences(r.err, "RIP=000000000000fff0"), 2u) << r.err;  // vCPU 1 at the reset vector
  EXPECT_EQ(occurrences(r.err, "  code at 0x"), 4u) << r.err;
  EXPECT_EQ(occurrences(r.err, "evmm: stats: pio_exits="), 3u) << r.err;  // after each dump, and at the end
}

}  // namespace
}  // namespace evmm::testing
