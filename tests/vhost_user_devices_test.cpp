// evmm's net and console devices served out of process (`evmm device net|console --socket`) to a
// frontend: evmm's own (`--net vhost-user=`, `--console vhost-user=`) with our test guest's drivers,
// and QEMU's (vhost-user netdev on microvm). The frames go on to the tests' DHCP responder, which
// also answers ARP for its router address, on a Unix datagram socket; the console's output is the
// device process's standard output and its input that process's standard input.
#include <gtest/gtest.h>
#include <unistd.h>

#include <cstdlib>
#include <thread>

#include "testing/dhcp_responder.h"
#include "tests/kvm_test_util.h"

namespace evmm::testing {
namespace {

// What netarp prints when the router's reply came back through every layer.
constexpr const char* kArpAnswered = "netarp: 10.0.2.2 is at 52:54:00:ee:ee:02 (60-byte reply";

ProcessOptions backend_opts(std::string stdin_data = {}) {
  ProcessOptions o;
  o.timeout = std::chrono::seconds(90);
  o.stdin_data = std::move(stdin_data);
  return o;
}

TEST(VhostUserDevices, GuestNetAndConsoleThroughEvmmFrontendToEvmmDevices) {
  REQUIRE_KVM();
  TempDir d("evmm-vhost-dev");
  ASSERT_FALSE(d.path.empty());
  DhcpServer router;
  ASSERT_EQ(router.start(d / "router.sock", DhcpLease{}), "");
  const std::string net_sock = d / "net.sock", cons_sock = d / "cons.sock";
  ProcessResult net, cons;
  std::thread net_thread([&] {
    net = run_process({EVMM_BINARY, "device", "net", "--socket", net_sock, "--net", "socket=" + (d / "router.sock"), "--stats"},
                      backend_opts());
  });
  std::thread cons_thread([&] {
    cons = run_process({EVMM_BINARY, "device", "console", "--socket", cons_sock, "--stats"},
                       backend_opts("typed into the device process\n"));
  });
  const bool listening = wait_for_socket(net_sock) && wait_for_socket(cons_sock);
  ProcessResult r;
  if (listening)
    r = boot("testprog.mb.elf", "virtio netarp consread", 1,
             {"--net", "vhost-user=" + net_sock + ",mac=52:54:00:aa:bb:cc", "--console", "vhost-user=" + cons_sock,
              "--stats"});
  net_thread.join();
  cons_thread.join();
  router.stop();
  ASSERT_TRUE(listening) << "evmm device did not listen\n" << net.err << cons.err;

  EXPECT_EQ(r.exit_status, 1) << r.out << r.err;
  EXPECT_TRUE(has(r.out, "virtio: 2 devices in the DSDT")) << r.out;
  // The MAC is the frontend's config space, not the backend's.
  EXPECT_TRUE(has(r.out, "virtio-net: mac 52:54:00:aa:bb:cc, sent a 60-byte frame")) << r.out;
  EXPECT_TRUE(has(r.out, kArpAnswered)) << r.out;
  EXPECT_TRUE(has(r.out, "virtio-console: wrote 44 bytes")) << r.out;
  EXPECT_TRUE(has(r.out, "consread: got typed into the device process")) << r.out;
  EXPECT_TRUE(has(r.err, "virtio-vhost-user-net0:")) << r.err;
  EXPECT_TRUE(has(r.err, "virtio-vhost-user-console:")) << r.err;

  // The console's bytes left through the device process, not through evmm's.
  EXPECT_EQ(cons.out, "hello from the guest through virtio-console\n");
  EXPECT_FALSE(has(r.out, "hello from the guest through virtio-console")) << r.out;
  EXPECT_EQ(cons.exit_status, 0) << cons.err;
  EXPECT_TRUE(has(cons.err, "refused 0,")) << cons.err;
  EXPECT_TRUE(has(cons.err, "console tx_bytes 44, rx_bytes 30, bad_chains 0")) << cons.err;

  // Two frames out (the guest's announcement and its ARP request), the router's reply in.
  EXPECT_EQ(net.exit_status, 0) << net.err;
  EXPECT_TRUE(has(net.err, "refused 0,")) << net.err;
  EXPECT_TRUE(has(net.err, "net rx_frames 1, tx_frames 2, rx_dropped 0, guest_errors 0, backend_errors 0")) << net.err;
  EXPECT_EQ(router.stats().arp_replies, 1u);
}

TEST(VhostUserDevices, QemuGuestReachesTheRouterThroughEvmmDeviceNet) {
  if (::access(kQemu, X_OK) != 0) GTEST_SKIP() << kQemu << " is not installed (Debian's qemu-system-x86)";
  TempDir d("evmm-vhost-dev");
  ASSERT_FALSE(d.path.empty());
  DhcpServer router;
  ASSERT_EQ(router.start(d / "router.sock", DhcpLease{}), "");
  const std::string net_sock = d / "net.sock";
  ProcessResult net;
  std::thread net_thread([&] {
    net = run_process({EVMM_BINARY, "device", "net", "--socket", net_sock, "--net", "socket=" + (d / "router.sock"), "--stats"},
                      backend_opts());
  });
  ProcessResult r;
  const bool listening = wait_for_socket(net_sock);
  if (listening) {
    ProcessOptions opts;
    opts.timeout = std::chrono::seconds(60);
    r = run_process(qemu_microvm(guest("testprog.pvh.elf"), "virtio netarp",
                                 {"-chardev", "socket,id=vn,path=" + net_sock, "-netdev", "vhost-user,id=n0,chardev=vn",
                                  "-device", "virtio-net-device,netdev=n0,mac=52:54:00:12:34:99"}),
                    opts);
  }
  net_thread.join();
  router.stop();
  ASSERT_TRUE(listening) << "evmm device did not listen\n" << net.err;
  EXPECT_EQ(r.exit_status, 1) << r.out << r.err;
  EXPECT_TRUE(has(r.out, "virtio-net: mac 52:54:00:12:34:99, sent a 60-byte frame")) << r.out;
  EXPECT_TRUE(has(r.out, kArpAnswered)) << r.out;
  EXPECT_EQ(net.exit_status, 0) << net.err;
  EXPECT_TRUE(has(net.err, "refused 0,")) << net.err;
  EXPECT_TRUE(has(net.err, "net rx_frames 1, tx_frames 2,")) << net.err;
  EXPECT_EQ(router.stats().arp_replies, 1u);
}

TEST(VhostUserDevices, DeviceCommandLineErrorsAreOneLine) {
  struct Case {
    std::vector<std::string> args;
    const char* says;
  } cases[] = {
      {{"device", "net", "--socket", "/tmp/evmm-x.sock"}, "needs --net"},
      {{"device", "net", "--socket", "/tmp/evmm-x.sock", "--net", "vhost-user=/tmp/y"}, "the frontend's"},
      {{"device", "net", "--socket", "/tmp/evmm-x.sock", "--net", "socket=/tmp/evmm-no-such-peer.sock"}, "--net"},
      {{"device", "net", "--socket", "/tmp/evmm-x.sock", "--net", "tap=a,mac=01:00:00:00:00:01"}, "multicast"},
  };
  for (const auto& c : cases) {
    auto r = evmm(c.args);
    EXPECT_NE(r.exit_status, 0) << c.says;
    EXPECT_TRUE(has(r.err, c.says)) << r.err;
    EXPECT_EQ(count_lines(r.err), 1u) << r.err;
  }
}

}  // namespace
}  // namespace evmm::testing
