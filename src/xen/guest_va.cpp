#include "xen/guest_va.h"

#include <algorithm>
#include <array>
#include <cstring>

#include "xen/xen_abi.h"

namespace evmm {

namespace {
constexpr uint64_t kPage = 4096;
}

std::optional<GuestSlice> GuestVa::piece(uint64_t gva, uint64_t n, bool write) const {
  auto page = translate_(gva & mask_);
  if (!page || (write && !page->writable)) return std::nullopt;
  auto host = mem_.slice(GuestAddress(page->gpa), n);
  if (!host) return std::nullopt;
  return *host;
}

int GuestVa::walk(uint64_t gva, uint64_t len, bool write,
                  const std::function<bool(const GuestSlice&, uint64_t)>& fn) const {
  uint64_t done = 0;
  while (done < len) {
    uint64_t at = (gva + done) & mask_;
    uint64_t n = std::min(len - done, kPage - (at % kPage));
    auto host = piece(at, n, write);
    if (!host) return -XEN_EFAULT;
    if (!fn(*host, done)) return 0;
    done += n;
  }
  return 0;
}

int GuestVa::read(uint64_t gva, std::span<uint8_t> out) const {
  return walk(gva, out.size(), false, [&](const GuestSlice& host, uint64_t done) {
    return host.copy_out(0, out.subspan(done, host.size())).has_value();
  });
}

int GuestVa::write(uint64_t gva, std::span<const uint8_t> in) const {
  return walk(gva, in.size(), true, [&](const GuestSlice& host, uint64_t done) {
    return host.copy_in(0, in.subspan(done, host.size())).has_value();
  });
}

int GuestVa::for_each_piece(uint64_t gva, uint64_t len,
                            const std::function<bool(std::span<const uint8_t>)>& fn) const {
  std::array<uint8_t, kPage> buf;
  return walk(gva, len, false, [&](const GuestSlice& host, uint64_t) {
    auto bytes = std::span(buf).first(host.size());
    return host.copy_out(0, bytes) && fn(bytes);
  });
}

}  // namespace evmm
