// A backend in the VMM on the other end of a guest's event channel (seed 002): the guest's send
// signals the backend's eventfd without an upcall to any vCPU, and the backend raises the port
// from its own thread. The guest half is the Xen test guest's `backend=` word.
#include <gtest/gtest.h>

#include "tests/kvm_test_util.h"
#include "tests/xen_harness.h"

namespace evmm {
namespace {

class XenBackend : public ::testing::TestWithParam<std::string> {};
// The suite name ends in Concurrent: ctest labels its tests "concurrency" (tests/CMakeLists.txt).
using XenBackendConcurrent = XenBackend;

TEST_P(XenBackendConcurrent, GuestSendsSignalTheEventfdAndTheHostRaisesThePortBack) {
  REQUIRE_KVM();
  xen_test::Guest g;
  ASSERT_EQ(g.boot(testing::guest(GetParam()), {.cmdline = "backend=1 n=10"}), "");
  // The guest's ten sends: each one a signal on the eventfd, none an upcall.
  ASSERT_TRUE(xen_test::wait_for([&] { return g.signals.load() >= 1; }));
  uint64_t upcalls_at_first = g.vm->xen()->stats().upcalls;
  ASSERT_TRUE(xen_test::wait_for([&] { return g.signals.load() >= 10; }));
  EXPECT_EQ(g.vm->xen()->stats().upcalls, upcalls_at_first) << "a send to the backend woke a vCPU";
  // The backend raises the port from this thread: the guest's handler sees it and powers off.
  ASSERT_TRUE(g.backend.raise());
  VmOutcome out;
  std::string console = g.finish(&out);
  EXPECT_EQ(out.kind, VmOutcome::Kind::PowerOff) << out.message << "\n" << console;
  EXPECT_TRUE(testing::has(console, "backend: sent 10 on port 1 (remote dom 0)")) << console;
  EXPECT_TRUE(testing::has(console, "backend: raised by the host 1 times")) << console;
  EXPECT_EQ(g.signals.load(), 10u);
  EXPECT_EQ(g.vm->xen()->stats().evtchn.backend_errors, 0u);
  EXPECT_FALSE(g.vm->xen()->kernel_path()) << "this host has no KVM_CAP_XEN_HVM";
}

TEST_P(XenBackendConcurrent, AStaleHandleCannotRaiseAReusedPort) {
  REQUIRE_KVM();
  xen_test::Guest g;
  ASSERT_EQ(g.boot(testing::guest(GetParam()), {.cmdline = "backend=1 n=1"}), "");
  ASSERT_TRUE(xen_test::wait_for([&] { return g.signals.load() >= 1; }));
  ASSERT_TRUE(g.backend.raise());
  g.finish();
  g.backend.release();
  auto r = g.backend.raise();
  ASSERT_FALSE(r);
  EXPECT_EQ(r.error().code(), ENOTCONN);
}

INSTANTIATE_TEST_SUITE_P(Images, XenBackendConcurrent, ::testing::Values("xen64.pvh.elf", "xen32.pvh.elf"),
                         [](const auto& i) { return i.param == "xen64.pvh.elf" ? "Xen64" : "Xen32"; });

}  // namespace
}  // namespace evmm
