// virtio-net against real host networking: a tap interface that the host kernel answers ARP on,
// the device thread under its seccomp filter, and the evmm binary's --net backends (built on the
// main thread under its filter). The device is driven from the host (testing/virtio_driver.h):
// evmm's own guest drivers and Linux's are other tests'.
#include <arpa/inet.h>
#include <gtest/gtest.h>
#include <net/if.h>
#include <netinet/in.h>
#include <sys/ioctl.h>
#include <sys/socket.h>
#include <sys/un.h>

#include <chrono>
#include <cstring>
#include <map>
#include <thread>

#include "devices/virtio/net/net.h"
#include "sandbox/seccomp.h"
#include "testing/virtio_driver.h"
#include "tests/kvm_test_util.h"

namespace evmm::testing {
namespace {

using namespace std::chrono_literals;
using virtio::NetDevice;
constexpr uint64_t kData = 0x200000;

// Sets an interface's IPv4 address and /24 mask and brings it up, with the ioctls `ip` would use.
std::string configure(const std::string& ifname, in_addr addr) {
  UniqueFd s(::socket(AF_INET, SOCK_DGRAM | SOCK_CLOEXEC, 0));
  ifreq ifr{};
  std::strncpy(ifr.ifr_name, ifname.c_str(), IFNAMSIZ - 1);
  auto set_addr = [&](unsigned long req, in_addr a) {
    sockaddr_in sin{};
    sin.sin_family = AF_INET;
    sin.sin_addr = a;
    std::memcpy(&ifr.ifr_addr, &sin, sizeof sin);
    return ::ioctl(s.get(), req, &ifr) == 0;
  };
  if (!set_addr(SIOCSIFADDR, addr)) return std::string("SIOCSIFADDR: ") + std::strerror(errno);
  if (!set_addr(SIOCSIFNETMASK, in_addr{htonl(0xffffff00)})) return std::string("SIOCSIFNETMASK: ") + std::strerror(errno);
  if (::ioctl(s.get(), SIOCGIFFLAGS, &ifr) != 0) return std::string("SIOCGIFFLAGS: ") + std::strerror(errno);
  ifr.ifr_flags |= IFF_UP;
  if (::ioctl(s.get(), SIOCSIFFLAGS, &ifr) != 0) return std::string("SIOCSIFFLAGS: ") + std::strerror(errno);
  return {};
}

// An Ethernet ARP request (RFC 826) from mac/ip for target, padded to the 60-byte minimum.
std::vector<uint8_t> arp_request(const virtio::MacAddress& mac, in_addr ip, in_addr target) {
  std::vector<uint8_t> f(60, 0);
  std::memset(f.data(), 0xff, 6);
  std::memcpy(&f[6], mac.data(), 6);
  f[12] = 0x08, f[13] = 0x06;                          // ARP
  f[14] = 0, f[15] = 1, f[16] = 0x08, f[17] = 0;       // Ethernet, IPv4
  f[18] = 6, f[19] = 4, f[20] = 0, f[21] = 1;          // lengths, request
  std::memcpy(&f[22], mac.data(), 6);
  std::memcpy(&f[28], &ip, 4);
  std::memcpy(&f[38], &target, 4);
  return f;
}

bool is_arp_reply_from(const std::vector<uint8_t>& f, in_addr from, const virtio::MacAddress& to) {
  return f.size() >= 42 && f[12] == 0x08 && f[13] == 0x06 && f[21] == 2 && std::memcmp(&f[28], &from, 4) == 0 &&
         std::memcmp(&f[0], to.data(), 6) == 0;
}

// Receive buffers of 2 KiB, each at an address of its own; head descriptor -> address.
struct RxBuffers {
  std::map<uint16_t, uint64_t> at;
  uint64_t next = kData;
  void post(VirtioTestDriver& d, int n) {
    for (int i = 0; i < n; ++i, next += 0x1000) at[d.submit(NetDevice::kRxQueue, {{next, 2048, true}})] = next;
  }
  // The frame in a used entry (the header stripped).
  std::vector<uint8_t> frame(VirtioTestDriver& d, const vring_used_elem& u) {
    std::vector<uint8_t> f(u.len > NetDevice::kHeaderLen ? u.len - NetDevice::kHeaderLen : 0);
    (void)d.mem.read(GuestAddress(at[uint16_t(u.id)] + NetDevice::kHeaderLen), f);
    return f;
  }
};

void transmit(VirtioTestDriver& d, const std::vector<uint8_t>& frame) {
  const uint64_t at = kData + 0x800000;  // above any receive buffer
  (void)d.mem.fill(GuestAddress(at), 0, NetDevice::kHeaderLen);
  (void)d.mem.write(GuestAddress(at + NetDevice::kHeaderLen), frame);
  d.submit(NetDevice::kTxQueue, {{at, uint32_t(NetDevice::kHeaderLen + frame.size()), false}});
}

TEST(VirtioNetTap, ArpRequestOutAndTheHostKernelsReplyBack) {
  const std::string ifname = fmt::format("evmmt{:03}", ::getpid() % 1000);
  auto backend = virtio::NetBackend::open_tap(ifname);
  if (!backend && (backend.error().code() == EPERM || backend.error().code() == ENOENT))
    GTEST_SKIP() << "no tap here: " << backend.error().message();
  ASSERT_TRUE(backend) << backend.error().message();
  // A /24 of 10.251.0.0/16 picked by the pid, so that parallel runs do not share one.
  const uint32_t net = 0x0afb0000u | ((uint32_t(::getpid()) % 250 + 1) << 8);
  const in_addr host{htonl(net | 1)}, guest_ip{htonl(net | 2)};
  ASSERT_EQ(configure(ifname, host), "");

  const auto mac = virtio::derived_mac(7);
  auto dev = NetDevice::create(std::move(*backend), mac);
  VirtioTestDriver d(dev);
  ASSERT_TRUE(d.init((1ull << VIRTIO_NET_F_MRG_RXBUF) | (1ull << VIRTIO_RING_F_EVENT_IDX), 2) & VIRTIO_CONFIG_S_DRIVER_OK);
  RxBuffers rx;
  rx.post(d, 8);
  d.notify(NetDevice::kRxQueue);
  transmit(d, arp_request(mac, guest_ip, host));
  d.notify(NetDevice::kTxQueue);
  EXPECT_EQ(dev->metrics().tx_frames.load(), 1u);

  // The host may also send its own frames (IPv6 router solicitations): look for the reply.
  bool replied = false;
  int frames = 0;
  for (auto end = std::chrono::steady_clock::now() + 5s; !replied && std::chrono::steady_clock::now() < end;) {
    (void)d.loop->run_once(50);
    while (auto u = d.next_used(NetDevice::kRxQueue)) {
      ++frames;
      replied |= is_arp_reply_from(rx.frame(d, *u), host, mac);
      rx.post(d, 1);
      d.notify(NetDevice::kRxQueue);
    }
  }
  EXPECT_TRUE(replied) << frames << " frames received, none the ARP reply";
  EXPECT_EQ(dev->metrics().guest_errors(), 0u);
}

// A peer bound at a path, as the DHCP responder of the Linux test is.
struct DgramPeer {
  std::string path = fmt::format("/tmp/evmm-net-{}.sock", ::getpid());
  UniqueFd fd;
  std::string bind() {
    ::unlink(path.c_str());
    fd = UniqueFd(::socket(AF_UNIX, SOCK_DGRAM | SOCK_CLOEXEC, 0));
    sockaddr_un a{};
    a.sun_family = AF_UNIX;
    std::strncpy(a.sun_path, path.c_str(), sizeof a.sun_path - 1);
    if (::bind(fd.get(), reinterpret_cast<sockaddr*>(&a), sizeof a) != 0) return std::strerror(errno);
    return {};
  }
  ~DgramPeer() { ::unlink(path.c_str()); }
};

// The device thread as the platform starts it (its loop's setup installs the device filter) moves
// frames both ways through a socket backend; a call its filter forbids would kill the process.
void device_thread_moves_frames(const std::string& path, int peer) {
  auto backend = virtio::NetBackend::connect_socket(path);
  if (!backend) std::_Exit(3);
  auto dev = NetDevice::create(std::move(*backend), virtio::derived_mac(0));
  VirtioTestDriver d(dev);
  if (!(d.init(1ull << VIRTIO_NET_F_MRG_RXBUF, 2) & VIRTIO_CONFIG_S_DRIVER_OK)) std::_Exit(4);
  RxBuffers rx;
  rx.post(d, 4);
  transmit(d, arp_request(virtio::derived_mac(0), in_addr{1}, in_addr{2}));
  if (!d.loop->start([] { return seccomp::install(seccomp::Role::Device); })) std::_Exit(5);
  // The guest's notifications, as KVM's ioeventfds would take them; the loop thread serves them.
  auto kick = [&](uint32_t q) {
    d.registry.dispatch_write(IoSpace::Mmio, VirtioTestDriver::kBase + VIRTIO_MMIO_QUEUE_NOTIFY,
                              std::span(reinterpret_cast<const uint8_t*>(&q), 4));
  };
  kick(NetDevice::kRxQueue);
  kick(NetDevice::kTxQueue);
  timeval limit{5, 0};
  (void)::setsockopt(peer, SOL_SOCKET, SO_RCVTIMEO, &limit, sizeof limit);
  std::vector<uint8_t> buf(2048);
  sockaddr_un from{};
  socklen_t fromlen = sizeof from;
  ssize_t n = ::recvfrom(peer, buf.data(), buf.size(), 0, reinterpret_cast<sockaddr*>(&from), &fromlen);
  if (n != 60) std::_Exit(6);
  // The answer goes to the device's autobound address.
  if (::sendto(peer, buf.data(), 60, 0, reinterpret_cast<sockaddr*>(&from), fromlen) != 60) std::_Exit(7);
  for (auto end = std::chrono::steady_clock::now() + 5s; std::chrono::steady_clock::now() < end;) {
    if (d.used_idx(NetDevice::kRxQueue) == 1 && dev->metrics().rx_frames.load() == 1) std::_Exit(0);
    std::this_thread::sleep_for(5ms);
  }
  std::_Exit(8);
}

TEST(VirtioNetSeccomp, DeviceThreadMovesFramesUnderItsFilter) {
  if (!seccomp::supported()) GTEST_SKIP() << "seccomp filters are off in sanitizer builds";
  GTEST_FLAG_SET(death_test_style, "threadsafe");
  DgramPeer peer;
  ASSERT_EQ(peer.bind(), "");
  EXPECT_EXIT(device_thread_moves_frames(peer.path, peer.fd.get()), ::testing::ExitedWithCode(0), "");
}

// What VirtioDevices does on the main thread when it builds a VM, under the main thread's filter:
// the socket backend (socket, bind, connect) and, where there is /dev/net/tun, the tap (TUNSETIFF).
// The evmm binary tests below do the same when /dev/kvm is there.
void main_thread_makes_backends(const std::string& path, bool tap) {
  std::thread t([&] {
    if (!seccomp::install(seccomp::Role::Main)) std::_Exit(3);
    if (!virtio::NetBackend::connect_socket(path)) std::_Exit(4);
    if (tap && !virtio::NetBackend::open_tap(fmt::format("evmmt{:03}", (::getpid() + 250) % 1000))) std::_Exit(5);
  });
  t.join();
  std::_Exit(0);
}

TEST(VirtioNetSeccomp, MainFilterAllowsTheBackendsToBeMade) {
  if (!seccomp::supported()) GTEST_SKIP() << "seccomp filters are off in sanitizer builds";
  GTEST_FLAG_SET(death_test_style, "threadsafe");
  DgramPeer peer;
  ASSERT_EQ(peer.bind(), "");
  const bool tap = ::access("/dev/net/tun", R_OK | W_OK) == 0 && ::geteuid() == 0;
  EXPECT_EXIT(main_thread_makes_backends(peer.path, tap), ::testing::ExitedWithCode(0), "");
}

TEST(VirtioNetCli, SocketBackendIsMadeUnderTheMainFilter) {
  REQUIRE_KVM();
  DgramPeer peer;
  ASSERT_EQ(peer.bind(), "");
  auto r = boot("testprog.mb.elf", "hello exit=3", 1, {"--net", "socket=" + peer.path, "--stats"});
  EXPECT_EQ(r.exit_status, 7) << r.out << r.err;
  EXPECT_TRUE(has(r.err, "virtio-net0:")) << r.err;
}

TEST(VirtioNetCli, SocketWithoutAPeerIsAOneLineError) {
  REQUIRE_KVM();
  auto r = boot("testprog.mb.elf", "hello exit=3", 1, {"--net", "socket=/tmp/evmm-no-such-peer.sock"});
  EXPECT_NE(r.exit_status, 7);
  EXPECT_TRUE(has(r.err, "the peer must already be bound there")) << r.err;
  EXPECT_EQ(count_lines(r.err), 1u) << r.err;
}

TEST(VirtioNetCli, TapBackendIsMadeUnderTheMainFilter) {
  REQUIRE_KVM();
  if (::access("/dev/net/tun", R_OK | W_OK) != 0) GTEST_SKIP() << "no /dev/net/tun";
  auto r = boot("testprog.mb.elf", "hello exit=3", 1,
                {"--net", fmt::format("tap=evmmt{:03}", (::getpid() + 500) % 1000), "--stats"});
  EXPECT_EQ(r.exit_status, 7) << r.out << r.err;
  EXPECT_TRUE(has(r.err, "virtio-net0:")) << r.err;
}

}  // namespace
}  // namespace evmm::testing
