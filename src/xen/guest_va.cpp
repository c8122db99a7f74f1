#include "xen/guest_va.h"

#include <algorithm>
#include <cstring>

#include "xen/xen_abi.h"

namespace evmm {

namespace {
constexpr uint64_t kPage = 4096;
}

std::optional<std::span<uint8_t>> GuestVa::piece(uint64_t gva, uint64_t n, bool write) const {
  auto page = translate_(gva & mask_);
  if (!page || (write && !page->writable)) return std::nullopt;
  auto host = mem_.slice(GuestAddress(page->gpa), n);
  if (!host) return std::nullopt;
  return *host;
}

int GuestVa::walk(uint64_t gva, uint64_t len, bool write,
                  const std::function<bool(std::span<uint8_t>, uint64_t)>& fn) const {
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
  return walk(gva, out.size(), false, [&](std::span<uint8_t> host, uint64_t done) {
    std::memcpy(out.data() + done, host.data(), host.size());
    return true;
  });
}

int GuestVa::write(uint64_t gva, std::span<const uint8_t> in) const {
  return walk(gva, in.size(), true, [&](std::span<uint8_t> host, uint64_t done) {
    std::memcpy(host.data(), in.data() + done, host.size());
    return true;
  });
}

int GuestVa::for_each_piece(uint64_t gva, uint64_t len,
                            const std::function<bool(std::span<const uint8_t>)>& fn) const {
  return walk(gva, len, false, [&](std::span<uint8_t> host, uint64_t) { return fn(host); });
}

}  // namespace evmm
