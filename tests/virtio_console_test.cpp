// --console virtio through the evmm binary: the device is built, and standard input is attached to
// it instead of COM1 (the main thread's and the device thread's filters allow both). The guest side
// of hvc0 is Linux's (the Linux guest test) and our own guest drivers'.
#include <gtest/gtest.h>

#include "tests/kvm_test_util.h"

namespace evmm::testing {
namespace {

TEST(VirtioConsoleCli, StdinFeedsTheVirtioConsoleAndCom1StillPrints) {
  REQUIRE_KVM();
  ProcessOptions opts;
  opts.stdin_data = "typed before the guest listens\n";
  auto r = boot("testprog.mb.elf", "hello exit=3", 1, {"--console", "virtio", "--stats"}, opts);
  EXPECT_EQ(r.exit_status, 7) << r.out << r.err;
  EXPECT_TRUE(has(r.out, "hello")) << r.out;
  EXPECT_TRUE(has(r.err, "virtio-console:")) << r.err;
  EXPECT_TRUE(has(r.err, "console:tx_bytes=0,rx_bytes=0,bad_chains=0")) << r.err;
}

}  // namespace
}  // namespace evmm::testing
