// The tests' DHCP responder (testing/dhcp_responder.h), which answers frames a Linux guest sends on
// its virtio-net. Input: one Ethernet frame.
// Invariants from dhcp_responder.h: every frame is counted exactly once, as answered (offer, ack,
// nak or an ARP reply), ignored or malformed; a DHCP answer is a broadcast IPv4/UDP frame from port
// 67 to 68 whose header checksum verifies and whose lengths agree with its size; it carries the
// request's transaction id and the lease's address exactly when it is not a NAK. An ARP answer is a
// 60-byte reply from the server's MAC and address to the asker's.
#include <cstring>

#include "fuzz_input.h"
#include "testing/dhcp_responder.h"

using namespace evmm::testing;

extern "C" int LLVMFuzzerInitialize(int*, char***) {
  fuzz_quiet_logs();
  return 0;
}

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  DhcpLease lease;
  DhcpResponder r(lease);
  auto out = r.answer(std::span(data, size));
  const auto& s = r.stats();
  FUZZ_CHECK(s.frames == 1);
  FUZZ_CHECK(s.offers + s.acks + s.naks + s.arp_replies + s.ignored + s.malformed == 1);
  FUZZ_CHECK(out.has_value() == (s.offers + s.acks + s.naks + s.arp_replies == 1));
  if (!out) return 0;
  const auto& f = *out;
  if (s.arp_replies) {
    FUZZ_CHECK(size >= 14 + 28 && f.size() == 60);
    FUZZ_CHECK(f[12] == 0x08 && f[13] == 0x06 && f[20] == 0 && f[21] == 2);
    FUZZ_CHECK(std::memcmp(f.data(), data + 22, 6) == 0 && std::memcmp(f.data() + 32, data + 22, 10) == 0);
    FUZZ_CHECK(std::memcmp(f.data() + 6, lease.server_mac.data(), 6) == 0);
    FUZZ_CHECK(std::memcmp(f.data() + 22, lease.server_mac.data(), 6) == 0);
    FUZZ_CHECK(std::memcmp(f.data() + 28, lease.server.data(), 4) == 0 && std::memcmp(data + 38, lease.server.data(), 4) == 0);
    return 0;
  }
  FUZZ_CHECK(f.size() >= 14 + 20 + 8 + 300);
  FUZZ_CHECK(f[12] == 0x08 && f[13] == 0x00 && f[14] == 0x45);
  FUZZ_CHECK(inet_checksum(std::span(f).subspan(14, 20)) == 0);
  FUZZ_CHECK(size_t(f[16] << 8 | f[17]) == f.size() - 14);
  FUZZ_CHECK(size_t(f[38] << 8 | f[39]) == f.size() - 34);
  FUZZ_CHECK(f[34] == 0 && f[35] == 67 && f[36] == 0 && f[37] == 68);
  const uint8_t* bootp = f.data() + 42;
  const uint8_t* request = data + 14 + (data[14] & 0x0f) * 4 + 8;  // answered, so the input holds it
  FUZZ_CHECK(bootp[0] == 2 && std::memcmp(bootp + 4, request + 4, 4) == 0);
  const bool nak = bootp[242] == 6;
  FUZZ_CHECK((std::memcmp(bootp + 16, lease.client.data(), 4) == 0) == !nak);
  return 0;
}
