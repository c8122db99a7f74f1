#include "testing/dhcp_responder.h"

#include <poll.h>
#include <sys/eventfd.h>
#include <unistd.h>

#include <algorithm>
#include <cstring>

namespace evmm::testing {

namespace {

constexpr size_t kEthHeader = 14, kIpHeader = 20, kUdpHeader = 8;
constexpr uint16_t kEtherIpv4 = 0x0800, kEtherArp = 0x0806;
constexpr size_t kArpLen = 28, kMinFrame = 60;  // an Ethernet frame without its FCS is at least 60 bytes
constexpr uint8_t kProtoUdp = 17;
constexpr uint16_t kServerPort = 67, kClientPort = 68;
// BOOTP fixed fields (RFC 951; RFC 2131 §2), then the magic cookie (RFC 2132 §2) and options.
constexpr size_t kXid = 4, kFlags = 10, kCiaddr = 12, kYiaddr = 16, kSiaddr = 20, kChaddr = 28, kCookie = 236;
constexpr size_t kOptions = 240, kMinBootp = 300;  // RFC 951's 300-byte message, padded as clients expect
constexpr uint8_t kCookieBytes[4] = {99, 130, 83, 99};
constexpr uint8_t kBootRequest = 1, kBootReply = 2, kHtypeEthernet = 1;
// Options (RFC 2132): pad, subnet mask, router, requested address, lease time, message type, server id, end.
constexpr uint8_t kOptPad = 0, kOptMask = 1, kOptRouter = 3, kOptRequested = 50, kOptLease = 51, kOptType = 53,
                  kOptServer = 54, kOptEnd = 255;

uint16_t be16(std::span<const uint8_t> b, size_t at) { return uint16_t(b[at] << 8 | b[at + 1]); }
void put16(std::vector<uint8_t>& v, uint16_t x) {
  v.push_back(uint8_t(x >> 8));
  v.push_back(uint8_t(x));
}
template <size_t N>
void put(std::vector<uint8_t>& v, const std::array<uint8_t, N>& a) {
  v.insert(v.end(), a.begin(), a.end());
}

struct Options {
  std::optional<uint8_t> type;
  std::optional<Ipv4> requested, server;
};

// Walks the options after the cookie; nullopt when one runs past the end or has a bad length.
std::optional<Options> parse_options(std::span<const uint8_t> bootp) {
  Options o;
  size_t i = kOptions;
  while (i < bootp.size()) {
    uint8_t code = bootp[i];
    if (code == kOptPad) { ++i; continue; }
    if (code == kOptEnd) break;
    if (i + 1 >= bootp.size()) return std::nullopt;
    size_t len = bootp[i + 1];
    if (i + 2 + len > bootp.size()) return std::nullopt;
    auto value = bootp.subspan(i + 2, len);
    auto ip = [&](std::optional<Ipv4>& out) {
      if (len != 4) return false;
      out.emplace();
      std::copy(value.begin(), value.end(), out->begin());
      return true;
    };
    if (code == kOptType) {
      if (len != 1) return std::nullopt;
      o.type = value[0];
    } else if (code == kOptRequested && !ip(o.requested)) {
      return std::nullopt;
    } else if (code == kOptServer && !ip(o.server)) {
      return std::nullopt;
    }
    i += 2 + len;
  }
  return o;
}

}  // namespace

uint16_t inet_checksum(std::span<const uint8_t> bytes) {
  uint32_t sum = 0;
  for (size_t i = 0; i + 1 < bytes.size(); i += 2) sum += uint32_t(bytes[i] << 8 | bytes[i + 1]);
  if (bytes.size() % 2) sum += uint32_t(bytes.back() << 8);
  while (sum >> 16) sum = (sum & 0xffff) + (sum >> 16);
  return uint16_t(~sum);
}

std::optional<std::vector<uint8_t>> DhcpResponder::answer(std::span<const uint8_t> frame) {
  ++stats_.frames;
  auto ignore = [&] { ++stats_.ignored; return std::nullopt; };
  auto malformed = [&] { ++stats_.malformed; return std::nullopt; };
  if (frame.size() < kEthHeader) return malformed();
  if (be16(frame, 12) == kEtherArp) return answer_arp(frame);
  if (be16(frame, 12) != kEtherIpv4) return ignore();
  auto ip = frame.subspan(kEthHeader);
  if (ip.size() < kIpHeader) return malformed();
  size_t ihl = size_t(ip[0] & 0x0f) * 4, total = be16(ip, 2);
  if (ip[0] >> 4 != 4 || ihl < kIpHeader || total < ihl || total > ip.size()) return malformed();
  ip = ip.first(total);  // the rest is Ethernet padding
  if (ip[9] != kProtoUdp) return ignore();
  if (be16(ip, 6) & 0x3fff) return ignore();  // a fragment (MF or an offset): DHCP is never fragmented here
  auto udp = ip.subspan(ihl);
  if (udp.size() < kUdpHeader) return malformed();
  if (be16(udp, 2) != kServerPort) return ignore();
  if (be16(udp, 0) != kClientPort) return ignore();
  size_t udp_len = be16(udp, 4);
  if (udp_len < kUdpHeader || udp_len > udp.size()) return malformed();
  auto bootp = udp.subspan(kUdpHeader, udp_len - kUdpHeader);
  if (bootp.size() < kOptions) return malformed();
  if (bootp[0] != kBootRequest) return ignore();
  if (bootp[1] != kHtypeEthernet || bootp[2] != 6) return malformed();
  if (!std::equal(std::begin(kCookieBytes), std::end(kCookieBytes), bootp.begin() + kCookie)) return malformed();
  auto opts = parse_options(bootp);
  if (!opts || !opts->type) return malformed();
  switch (static_cast<DhcpType>(*opts->type)) {
    case DhcpType::Discover:
      ++stats_.discovers;
      ++stats_.offers;
      return reply(DhcpType::Offer, bootp);
    case DhcpType::Request: {
      ++stats_.requests;
      if (opts->server && *opts->server != lease_.server) return ignore();  // the client chose another server
      Ipv4 wanted;
      if (opts->requested) wanted = *opts->requested;
      else std::copy_n(bootp.begin() + kCiaddr, 4, wanted.begin());  // renewing (RFC 2131 §4.3.2)
      if (wanted != lease_.client) {
        ++stats_.naks;
        return reply(DhcpType::Nak, bootp);
      }
      ++stats_.acks;
      return reply(DhcpType::Ack, bootp);
    }
    default:
      return ignore();  // decline, release, inform: nothing to answer for a single fixed lease
  }
}

// RFC 826: a request for the server's (the router's) address gets its MAC; other ARP traffic is not ours.
std::optional<std::vector<uint8_t>> DhcpResponder::answer_arp(std::span<const uint8_t> frame) {
  auto arp = frame.subspan(kEthHeader);
  if (arp.size() < kArpLen) {
    ++stats_.malformed;
    return std::nullopt;
  }
  const bool ethernet_ipv4 = be16(arp, 0) == kHtypeEthernet && be16(arp, 2) == kEtherIpv4 && arp[4] == 6 && arp[5] == 4;
  if (!ethernet_ipv4 || be16(arp, 6) != 1 || !std::equal(lease_.server.begin(), lease_.server.end(), arp.begin() + 24)) {
    ++stats_.ignored;
    return std::nullopt;
  }
  ++stats_.arp_replies;
  std::vector<uint8_t> f;
  f.insert(f.end(), arp.begin() + 8, arp.begin() + 14);  // to the sender's hardware address
  put(f, lease_.server_mac);
  put16(f, kEtherArp);
  f.insert(f.end(), arp.begin(), arp.begin() + 6);  // htype, ptype, hlen, plen
  put16(f, 2);                                      // reply
  put(f, lease_.server_mac);
  put(f, lease_.server);
  f.insert(f.end(), arp.begin() + 8, arp.begin() + 18);  // the sender's hardware and protocol addresses
  f.resize(kMinFrame, 0);
  return f;
}

std::vector<uint8_t> DhcpResponder::reply(DhcpType type, std::span<const uint8_t> request) const {
  std::vector<uint8_t> b(kOptions, 0);
  b[0] = kBootReply;
  b[1] = kHtypeEthernet;
  b[2] = 6;
  std::copy_n(request.begin() + kXid, 4, b.begin() + kXid);
  std::copy_n(request.begin() + kFlags, 2, b.begin() + kFlags);
  std::copy_n(request.begin() + kChaddr, 16, b.begin() + kChaddr);
  if (type != DhcpType::Nak) {
    std::copy(lease_.client.begin(), lease_.client.end(), b.begin() + kYiaddr);
    std::copy(lease_.server.begin(), lease_.server.end(), b.begin() + kSiaddr);
  }
  std::copy(std::begin(kCookieBytes), std::end(kCookieBytes), b.begin() + kCookie);
  b.insert(b.end(), {kOptType, 1, uint8_t(type), kOptServer, 4});
  put(b, lease_.server);
  if (type != DhcpType::Nak) {
    b.insert(b.end(), {kOptLease, 4});
    put(b, std::array<uint8_t, 4>{uint8_t(lease_.lease_seconds >> 24), uint8_t(lease_.lease_seconds >> 16),
                                  uint8_t(lease_.lease_seconds >> 8), uint8_t(lease_.lease_seconds)});
    b.insert(b.end(), {kOptMask, 4});
    put(b, lease_.netmask);
    b.insert(b.end(), {kOptRouter, 4});
    put(b, lease_.server);
  }
  b.push_back(kOptEnd);
  if (b.size() < kMinBootp) b.resize(kMinBootp, 0);

  std::vector<uint8_t> f;
  f.reserve(kEthHeader + kIpHeader + kUdpHeader + b.size());
  put(f, Mac{0xff, 0xff, 0xff, 0xff, 0xff, 0xff});
  put(f, lease_.server_mac);
  put16(f, kEtherIpv4);
  const size_t ip_at = f.size();
  f.insert(f.end(), {0x45, 0});
  put16(f, uint16_t(kIpHeader + kUdpHeader + b.size()));
  f.insert(f.end(), {0, 0, 0, 0, 64, kProtoUdp, 0, 0});  // id, flags and offset, TTL, protocol, checksum
  put(f, lease_.server);
  put(f, Ipv4{255, 255, 255, 255});
  uint16_t sum = inet_checksum(std::span(f).subspan(ip_at, kIpHeader));
  f[ip_at + 10] = uint8_t(sum >> 8);
  f[ip_at + 11] = uint8_t(sum);
  put16(f, kServerPort);
  put16(f, kClientPort);
  put16(f, uint16_t(kUdpHeader + b.size()));
  put16(f, 0);  // no UDP checksum (RFC 768)
  f.insert(f.end(), b.begin(), b.end());
  return f;
}

std::string DhcpServer::start(const std::string& path, const DhcpLease& lease, const std::string& peer) {
  sockaddr_un addr{};
  addr.sun_family = AF_UNIX;
  if (path.size() >= sizeof addr.sun_path || peer.size() >= sizeof addr.sun_path) return "socket path too long";
  std::memcpy(addr.sun_path, path.c_str(), path.size() + 1);
  fd_ = ::socket(AF_UNIX, SOCK_DGRAM | SOCK_CLOEXEC, 0);
  if (fd_ < 0) return "socket: " + std::string(std::strerror(errno));
  ::unlink(path.c_str());
  if (::bind(fd_, reinterpret_cast<sockaddr*>(&addr), sizeof addr) != 0) return "bind " + path + ": " + std::strerror(errno);
  path_ = path;
  if (!peer.empty()) {
    peer_.sun_family = AF_UNIX;
    std::memcpy(peer_.sun_path, peer.c_str(), peer.size() + 1);
    peer_len_ = sizeof peer_;
  }
  stop_fd_ = ::eventfd(0, EFD_CLOEXEC);
  if (stop_fd_ < 0) return "eventfd: " + std::string(std::strerror(errno));
  responder_.emplace(lease);
  thread_ = std::thread([this] { serve(); });
  return {};
}

void DhcpServer::serve() {
  std::vector<uint8_t> buf(65536);
  for (;;) {
    pollfd fds[2] = {{fd_, POLLIN, 0}, {stop_fd_, POLLIN, 0}};
    if (::poll(fds, 2, -1) < 0) {
      if (errno == EINTR) continue;
      return;
    }
    if (fds[1].revents) return;
    sockaddr_un from{};
    socklen_t from_len = sizeof from;
    ssize_t n = ::recvfrom(fd_, buf.data(), buf.size(), MSG_DONTWAIT, reinterpret_cast<sockaddr*>(&from), &from_len);
    if (n < 0) continue;
    auto out = responder_->answer(std::span(buf.data(), size_t(n)));
    if (!out) continue;
    // An unbound sender has only its family in the address; then the reply goes to the peer we were told.
    const bool named = from_len > sizeof(sa_family_t);
    const sockaddr_un* to = named ? &from : &peer_;
    socklen_t to_len = named ? from_len : peer_len_;
    if (to_len == 0 || ::sendto(fd_, out->data(), out->size(), 0, reinterpret_cast<const sockaddr*>(to), to_len) < 0)
      ++send_errors_;
  }
}

void DhcpServer::stop() {
  if (thread_.joinable()) {
    uint64_t one = 1;
    (void)!::write(stop_fd_, &one, sizeof one);
    thread_.join();
  }
  if (fd_ >= 0) ::close(fd_);
  if (stop_fd_ >= 0) ::close(stop_fd_);
  fd_ = stop_fd_ = -1;
  if (!path_.empty()) ::unlink(path_.c_str());
  path_.clear();
}

}  // namespace evmm::testing
