// The tests' DHCP responder (testing/dhcp_responder.h): the answers Linux's ipconfig needs, and
// refusals of broken frames. No KVM; it lives here because its code lives in testing/.
#include "testing/dhcp_responder.h"

#include <gtest/gtest.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>

#include <cstring>

namespace evmm::testing {
namespace {

const Mac kClientMac{0x52, 0x54, 0x00, 0x12, 0x34, 0x56};

// A request as Linux's ipconfig builds it (net/ipv4/ipconfig.c): broadcast, from 0.0.0.0:68.
std::vector<uint8_t> request(uint8_t type, std::vector<uint8_t> options = {}, Ipv4 ciaddr = {}) {
  std::vector<uint8_t> bootp(240, 0);
  bootp[0] = 1, bootp[1] = 1, bootp[2] = 6;
  bootp[4] = 0x12, bootp[5] = 0x34, bootp[6] = 0xab, bootp[7] = 0xcd;
  std::copy(ciaddr.begin(), ciaddr.end(), bootp.begin() + 12);
  std::copy(kClientMac.begin(), kClientMac.end(), bootp.begin() + 28);
  bootp[236] = 99, bootp[237] = 130, bootp[238] = 83, bootp[239] = 99;
  if (type) bootp.insert(bootp.end(), {53, 1, type});
  bootp.insert(bootp.end(), options.begin(), options.end());
  bootp.push_back(255);
  bootp.resize(std::max<size_t>(bootp.size(), 300), 0);
  std::vector<uint8_t> f(14, 0xff);
  std::copy(kClientMac.begin(), kClientMac.end(), f.begin() + 6);
  f[12] = 0x08, f[13] = 0x00;
  size_t udp_len = 8 + bootp.size(), ip_len = 20 + udp_len;
  f.insert(f.end(), {0x45, 0, uint8_t(ip_len >> 8), uint8_t(ip_len), 0, 0, 0, 0, 64, 17, 0, 0, 0, 0, 0, 0,
                     255, 255, 255, 255});
  uint16_t sum = inet_checksum(std::span(f).subspan(14, 20));
  f[24] = uint8_t(sum >> 8), f[25] = uint8_t(sum);
  f.insert(f.end(), {0, 68, 0, 67, uint8_t(udp_len >> 8), uint8_t(udp_len), 0, 0});
  f.insert(f.end(), bootp.begin(), bootp.end());
  return f;
}

// The value of option `code` in a reply, or empty.
std::vector<uint8_t> option(const std::vector<uint8_t>& reply, uint8_t code) {
  for (size_t i = 42 + 240; i + 1 < reply.size() && reply[i] != 255;) {
    if (reply[i] == 0) { ++i; continue; }
    if (reply[i] == code) return {reply.begin() + long(i) + 2, reply.begin() + long(i) + 2 + reply[i + 1]};
    i += 2 + reply[i + 1];
  }
  return {};
}

Ipv4 yiaddr(const std::vector<uint8_t>& reply) { return {reply[58], reply[59], reply[60], reply[61]}; }

TEST(DhcpResponder, OffersTheLeaseToADiscover) {
  DhcpLease lease;
  DhcpResponder r(lease);
  auto out = r.answer(request(1, {55, 3, 1, 3, 12}));
  ASSERT_TRUE(out);
  const auto& f = *out;
  EXPECT_EQ(std::vector<uint8_t>(f.begin(), f.begin() + 6), std::vector<uint8_t>(6, 0xff));
  EXPECT_EQ(inet_checksum(std::span(f).subspan(14, 20)), 0);
  EXPECT_EQ(size_t(f[16] << 8 | f[17]), f.size() - 14);
  EXPECT_EQ(std::vector<uint8_t>(f.begin() + 26, f.begin() + 30), std::vector<uint8_t>(lease.server.begin(), lease.server.end()));
  EXPECT_EQ(f[35], 67);
  EXPECT_EQ(f[37], 68);
  EXPECT_EQ(f[42], 2);                                           // BOOTREPLY
  EXPECT_EQ(std::memcmp(&f[46], "\x12\x34\xab\xcd", 4), 0);      // the client's xid
  EXPECT_EQ(std::memcmp(&f[70], kClientMac.data(), 6), 0);        // chaddr
  EXPECT_EQ(yiaddr(f), lease.client);
  EXPECT_EQ(option(f, 53), std::vector<uint8_t>{2});
  EXPECT_EQ(option(f, 54), std::vector<uint8_t>(lease.server.begin(), lease.server.end()));
  EXPECT_EQ(option(f, 1), std::vector<uint8_t>(lease.netmask.begin(), lease.netmask.end()));
  EXPECT_EQ(option(f, 3), std::vector<uint8_t>(lease.server.begin(), lease.server.end()));
  EXPECT_EQ(r.stats().offers, 1u);
}

TEST(DhcpResponder, AcksARequestForTheLeaseAndNaksAnyOther) {
  DhcpLease lease;
  DhcpResponder r(lease);
  std::vector<uint8_t> ours{54, 4, 10, 0, 2, 2, 50, 4, 10, 0, 2, 15};
  auto ack = r.answer(request(3, ours));
  ASSERT_TRUE(ack);
  EXPECT_EQ(option(*ack, 53), std::vector<uint8_t>{5});
  EXPECT_EQ(yiaddr(*ack), lease.client);
  auto renew = r.answer(request(3, {}, lease.client));  // no option 50: ciaddr says which address
  ASSERT_TRUE(renew);
  EXPECT_EQ(option(*renew, 53), std::vector<uint8_t>{5});
  auto nak = r.answer(request(3, {50, 4, 10, 0, 2, 99}));
  ASSERT_TRUE(nak);
  EXPECT_EQ(option(*nak, 53), std::vector<uint8_t>{6});
  EXPECT_EQ(yiaddr(*nak), (Ipv4{}));
  EXPECT_FALSE(r.answer(request(3, {54, 4, 10, 0, 2, 3, 50, 4, 10, 0, 2, 15})));  // another server's
  EXPECT_EQ(r.stats().acks, 2u);
  EXPECT_EQ(r.stats().naks, 1u);
  EXPECT_EQ(r.stats().ignored, 1u);
}

TEST(DhcpResponder, EveryTruncationIsRefusedAndCounted) {
  DhcpResponder r(DhcpLease{});
  auto f = request(1);
  for (size_t n = 0; n < 42 + 240; ++n) EXPECT_FALSE(r.answer(std::span(f.data(), n))) << n << " bytes";
  EXPECT_EQ(r.stats().malformed, 42u + 240u);
  EXPECT_EQ(r.stats().offers, 0u);
}

TEST(DhcpResponder, RefusesBadOptionsAndIgnoresOtherTraffic) {
  DhcpResponder r(DhcpLease{});
  auto past_end = request(1);
  past_end.resize(42 + 243);
  past_end.insert(past_end.end(), {12, 200, 'x'});  // a host name that runs past the frame
  size_t ip_len = past_end.size() - 14, udp_len = past_end.size() - 34;
  past_end[16] = uint8_t(ip_len >> 8), past_end[17] = uint8_t(ip_len);
  past_end[38] = uint8_t(udp_len >> 8), past_end[39] = uint8_t(udp_len);
  EXPECT_FALSE(r.answer(past_end));
  EXPECT_FALSE(r.answer(request(0)));  // no message type
  auto bad_len = request(1, {50, 3, 1, 2, 3});
  EXPECT_FALSE(r.answer(bad_len));
  EXPECT_EQ(r.stats().malformed, 3u);

  auto arp = request(1);
  arp[13] = 0x06;
  auto dns = request(1);
  dns[37] = 53;
  auto fragment = request(1);
  fragment[20] = 0x20;  // more fragments
  auto reply = request(1);
  reply[42] = 2;
  for (auto* f : {&arp, &dns, &fragment, &reply}) EXPECT_FALSE(r.answer(*f));
  EXPECT_FALSE(r.answer(request(7)));  // a release needs no answer
  EXPECT_EQ(r.stats().ignored, 5u);
}

// An ARP request from the client for `target`, as testprog's netarp sends it.
std::vector<uint8_t> arp_request(Ipv4 target) {
  std::vector<uint8_t> f(60, 0);
  std::fill_n(f.begin(), 6, 0xff);
  std::copy(kClientMac.begin(), kClientMac.end(), f.begin() + 6);
  const uint8_t head[] = {0x08, 0x06, 0, 1, 0x08, 0x00, 6, 4, 0, 1};
  std::copy(std::begin(head), std::end(head), f.begin() + 12);
  std::copy(kClientMac.begin(), kClientMac.end(), f.begin() + 22);
  const Ipv4 sender{10, 0, 2, 15};
  std::copy(sender.begin(), sender.end(), f.begin() + 28);
  std::copy(target.begin(), target.end(), f.begin() + 38);
  return f;
}

TEST(DhcpResponder, AnswersArpForTheRouterOnly) {
  DhcpLease lease;
  DhcpResponder r(lease);
  auto out = r.answer(arp_request(lease.server));
  ASSERT_TRUE(out);
  ASSERT_EQ(out->size(), 60u);
  EXPECT_TRUE(std::equal(kClientMac.begin(), kClientMac.end(), out->begin()));           // to the asker
  EXPECT_TRUE(std::equal(lease.server_mac.begin(), lease.server_mac.end(), out->begin() + 6));
  EXPECT_EQ((*out)[21], 2);                                                               // a reply
  EXPECT_TRUE(std::equal(lease.server_mac.begin(), lease.server_mac.end(), out->begin() + 22));
  EXPECT_TRUE(std::equal(lease.server.begin(), lease.server.end(), out->begin() + 28));
  EXPECT_TRUE(std::equal(kClientMac.begin(), kClientMac.end(), out->begin() + 32));      // target hardware
  EXPECT_EQ((*out)[38], 10);
  EXPECT_EQ((*out)[41], 15);                                                              // target protocol
  EXPECT_EQ(r.stats().arp_replies, 1u);

  EXPECT_FALSE(r.answer(arp_request({10, 0, 2, 3})));  // someone else's address
  auto reply = arp_request(lease.server);
  reply[21] = 2;
  EXPECT_FALSE(r.answer(reply));
  EXPECT_EQ(r.stats().ignored, 2u);
  auto f = arp_request(lease.server);
  for (size_t n = 14; n < 14 + 28; ++n) EXPECT_FALSE(r.answer(std::span(f.data(), n))) << n << " bytes";
  EXPECT_EQ(r.stats().malformed, 28u);
  EXPECT_EQ(r.stats().arp_replies, 1u);
}

TEST(DhcpServer, AnswersOnAUnixDatagramSocket) {
  std::string dir = "/tmp/evmm-dhcp-XXXXXX";
  ASSERT_TRUE(::mkdtemp(dir.data()));
  DhcpServer server;
  ASSERT_EQ(server.start(dir + "/server", DhcpLease{}), "");
  int c = ::socket(AF_UNIX, SOCK_DGRAM | SOCK_CLOEXEC, 0);
  ASSERT_GE(c, 0);
  sockaddr_un me{}, them{};
  me.sun_family = them.sun_family = AF_UNIX;
  std::snprintf(me.sun_path, sizeof me.sun_path, "%s/client", dir.c_str());
  std::snprintf(them.sun_path, sizeof them.sun_path, "%s/server", dir.c_str());
  ASSERT_EQ(::bind(c, reinterpret_cast<sockaddr*>(&me), sizeof me), 0);
  timeval tv{5, 0};
  ::setsockopt(c, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof tv);
  auto d = request(1);
  ASSERT_EQ(::sendto(c, d.data(), d.size(), 0, reinterpret_cast<sockaddr*>(&them), sizeof them), ssize_t(d.size()));
  std::vector<uint8_t> buf(2048);
  ssize_t n = ::recv(c, buf.data(), buf.size(), 0);
  ASSERT_GT(n, 42 + 243);
  buf.resize(size_t(n));
  EXPECT_EQ(option(buf, 53), std::vector<uint8_t>{2});
  server.stop();
  EXPECT_EQ(server.stats().offers, 1u);
  EXPECT_EQ(server.send_errors(), 0u);
  ::close(c);
  ::unlink(me.sun_path);
  ::rmdir(dir.c_str());
}

}  // namespace
}  // namespace evmm::testing
