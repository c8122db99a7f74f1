// A DHCP server for one client, for tests: Linux's kernel IP autoconfig (`ip=dhcp`) on a guest's
// virtio-net gets its address from it through the Unix datagram net backend.
//
// DhcpResponder answers Ethernet frames: a DHCPDISCOVER gets a DHCPOFFER of the lease, a
// DHCPREQUEST for the lease's address a DHCPACK, a request for any other address a DHCPNAK
// (RFC 2131 §4.3). Replies are broadcast from the lease's server address to 255.255.255.255 with
// the client's transaction id and hardware address; their IPv4 header checksum is set (Linux's
// ipconfig drops a reply without one) and their UDP checksum is 0, which IPv4 allows (RFC 768).
//
// The frames come from a guest, so everything is checked before use: lengths at every layer, the
// IPv4 version, header length and fragment fields, the UDP ports (68 to 67), the BOOTP op,
// hardware type and length, the magic cookie and each option's length. As the router it also
// answers an ARP request for the server's address (RFC 826) with server_mac. A frame that is not
// DHCP for a server nor such an ARP request (IPv6, other UDP, ARP for another address) is ignored; one that claims to be and is not well formed is
// counted as malformed. Neither gets an answer, and nothing the frame says can make the responder
// read outside it.
//
// DhcpServer runs a responder on a Unix datagram socket bound at a path, on its own thread, and
// answers each frame to the address it came from (or to the peer it was told, when the sender is
// unbound).
#pragma once

#include <sys/socket.h>
#include <sys/un.h>

#include <array>
#include <atomic>
#include <cstdint>
#include <optional>
#include <span>
#include <string>
#include <thread>
#include <vector>

namespace evmm::testing {

using Ipv4 = std::array<uint8_t, 4>;
using Mac = std::array<uint8_t, 6>;

// DHCP message types (RFC 2132 §9.6).
enum class DhcpType : uint8_t { Discover = 1, Offer = 2, Request = 3, Decline = 4, Ack = 5, Nak = 6, Release = 7, Inform = 8 };

struct DhcpLease {
  Ipv4 client{10, 0, 2, 15};
  Ipv4 server{10, 0, 2, 2};  // also the router
  Ipv4 netmask{255, 255, 255, 0};
  Mac server_mac{0x52, 0x54, 0x00, 0xee, 0xee, 0x02};
  uint32_t lease_seconds = 86400;
};

struct DhcpStats {
  uint64_t frames = 0;     // every frame given to answer()
  uint64_t ignored = 0;    // not a DHCP request to a server (not IPv4/UDP to port 67, or a fragment)
  uint64_t malformed = 0;  // a truncated or inconsistent frame, or a DHCP request that is not one
  uint64_t discovers = 0;
  uint64_t requests = 0;
  uint64_t offers = 0;
  uint64_t acks = 0;
  uint64_t naks = 0;
  uint64_t arp_replies = 0;  // ARP requests for the server's address, answered
};

class DhcpResponder {
 public:
  explicit DhcpResponder(const DhcpLease& lease) : lease_(lease) {}

  // The reply to one frame the client sent, or nothing.
  std::optional<std::vector<uint8_t>> answer(std::span<const uint8_t> frame);

  const DhcpStats& stats() const { return stats_; }
  const DhcpLease& lease() const { return lease_; }

 private:
  std::vector<uint8_t> reply(DhcpType type, std::span<const uint8_t> request_bootp) const;
  std::optional<std::vector<uint8_t>> answer_arp(std::span<const uint8_t> frame);

  DhcpLease lease_;
  DhcpStats stats_;
};

// The Internet checksum of `bytes` (RFC 1071), as stored in a header.
uint16_t inet_checksum(std::span<const uint8_t> bytes);

class DhcpServer {
 public:
  DhcpServer() = default;
  DhcpServer(const DhcpServer&) = delete;
  DhcpServer& operator=(const DhcpServer&) = delete;
  ~DhcpServer() { stop(); }

  // Binds a datagram socket at `path` and serves `lease` on a thread; empty on success, else what
  // failed. `peer`, if given, is where replies go when a frame's sender has no address.
  std::string start(const std::string& path, const DhcpLease& lease, const std::string& peer = {});
  // Ends the thread and removes the socket; the stats stay readable.
  void stop();

  // Read after stop() (the thread owns them until then).
  const DhcpStats& stats() const { return responder_ ? responder_->stats() : empty_; }
  uint64_t send_errors() const { return send_errors_; }

 private:
  void serve();

  int fd_ = -1;
  int stop_fd_ = -1;
  std::string path_;
  sockaddr_un peer_{};
  socklen_t peer_len_ = 0;
  std::optional<DhcpResponder> responder_;
  DhcpStats empty_;
  uint64_t send_errors_ = 0;
  std::thread thread_;
};

}  // namespace evmm::testing
