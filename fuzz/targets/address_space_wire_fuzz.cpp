// The address-space protocol's message parser (memory/address_space_wire.h): what an attached device
// backend reads from evmm, and evmm from the backend. Input: one byte giving how many fds came with
// the message (0-3), then the datagram.
// Invariants: a message is accepted only with the fds its type carries, with regions that are
// non-empty, page-aligned, sorted and disjoint; encoding an accepted message and parsing that again
// gives the same message.
#include "fuzz_input.h"
#include "memory/address_space_wire.h"

using namespace evmm;

extern "C" int LLVMFuzzerInitialize(int*, char***) {
  fuzz_quiet_logs();
  return 0;
}

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  if (size < 1) return 0;
  const size_t nfds = data[0] % 4;
  auto m = wire::parse(std::span(data + 1, size - 1), nfds);
  if (!m) {
    const int e = m.error().code();
    FUZZ_CHECK(e == EPROTO || e == EMSGSIZE || e == EBADMSG || e == EINVAL || e == EEXIST);
    return 0;
  }
  FUZZ_CHECK(nfds == wire::fds_for(m->type, m->regions.size()));
  FUZZ_CHECK(m->regions.size() <= wire::kMaxRegions);
  for (size_t i = 0; i < m->regions.size(); ++i) {
    const auto& r = m->regions[i];
    FUZZ_CHECK(r.size > 0 && r.size % wire::kPageSize == 0 && r.start.raw() % wire::kPageSize == 0);
    FUZZ_CHECK(r.start.checked_add(r.size).has_value());
    if (i) FUZZ_CHECK(m->regions[i - 1].start + m->regions[i - 1].size <= r.start);
  }
  auto again = wire::parse(wire::encode(*m), nfds);
  FUZZ_CHECK(again.has_value());
  FUZZ_CHECK(again->type == m->type && again->generation == m->generation && again->regions == m->regions);
  return 0;
}
