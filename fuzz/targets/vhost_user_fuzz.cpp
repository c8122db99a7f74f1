// The vhost-user message parser (vhost/vhost_user.h): what `evmm device` reads from its frontend.
// Input: one byte giving how many fds came with the message (0-15), the 12-byte header, then the
// payload (the header's size field is taken as it is; a mismatch must be refused).
// Invariants: an accepted message is a request the backend implements, with the version bit and not
// the reply bit, a payload of the shape its request fixes with every value in range, and exactly the
// fds its request carries.
#include <cstring>

#include "fuzz_input.h"
#include "vhost/vhost_user.h"

using namespace evmm;
using namespace evmm::vhost;

extern "C" int LLVMFuzzerInitialize(int*, char***) {
  fuzz_quiet_logs();
  return 0;
}

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  if (size < 1 + kHeaderSize) return 0;
  const size_t nfds = data[0] % 16;
  Header h;
  std::memcpy(&h, data + 1, sizeof h);
  std::vector<UniqueFd> fds(nfds);  // invalid fds: the parser only counts and moves them
  auto m = parse_message(h, std::span(data + 1 + kHeaderSize, size - 1 - kHeaderSize), std::move(fds));
  if (!m) {
    const int e = m.error().code();
    FUZZ_CHECK(e == EPROTO || e == ENOSYS || e == EMSGSIZE || e == EBADMSG || e == EINVAL);
    return 0;
  }
  FUZZ_CHECK((h.flags & kFlagVersionMask) == kVersion && !(h.flags & kFlagReply));
  FUZZ_CHECK(h.size == size - 1 - kHeaderSize);
  FUZZ_CHECK(m->fds.size() == nfds);
  FUZZ_CHECK(to_string(m->request) != "unknown");
  if (auto* regions = std::get_if<std::vector<MemRegion>>(&m->payload)) {
    FUZZ_CHECK(!regions->empty() && regions->size() <= kMaxMemTableRegions && regions->size() == nfds);
    for (const auto& r : *regions) FUZZ_CHECK(r.size > 0 && r.guest_addr + r.size > r.guest_addr);
  }
  if (auto* s = std::get_if<VringState>(&m->payload)) FUZZ_CHECK(s->index < kMaxQueues);
  if (auto* a = std::get_if<VringAddr>(&m->payload)) FUZZ_CHECK(a->index < kMaxQueues);
  if (auto* f = std::get_if<VringFd>(&m->payload)) FUZZ_CHECK(f->index < kMaxQueues && nfds == (f->has_fd ? 1u : 0u));
  if (auto* l = std::get_if<LogArea>(&m->payload)) FUZZ_CHECK(l->size > 0 && l->offset + l->size > l->offset && nfds == 1);
  if (auto* c = std::get_if<ConfigAccess>(&m->payload)) {
    FUZZ_CHECK(c->offset + c->size <= kMaxConfig && c->data.size() == c->size);
  }
  return 0;
}
