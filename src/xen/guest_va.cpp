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

int GuestVa::copy(uint64_t gva, uint64_t len, bool write, uint8_t* buf) const {
  uint64_t done = 0;
  while (done < len) {
    uint64_t at = (gva + done) & mask_;
    uint64_t n = std::min(len - done, kPage - (at % kPage));
    auto host = piece(at, n, write);
    if (!host) return -XEN_EFAULT;
    if (write) std::memcpy(host->data(), buf + done, n);
    else std::memcpy(buf + done, host->data(), n);
    done += n;
  }
  return 0;
}

int GuestVa::read(uint64_t gva, std::span<uint8_t> out) const { return copy(gva, out.size(), false, out.data()); }

int GuestVa::write(uint64_t gva, std::span<const uint8_t> in) const {
  return copy(gva, in.size(), true, const_cast<uint8_t*>(in.data()));
}

int GuestVa::for_each_piece(uint64_t gva, uint64_t len,
                            const std::function<bool(std::span<const uint8_t>)>& fn) const {
  uint64_t done = 0;
  while (done < len) {
    uint64_t at = (gva + done) & mask_;
    uint64_t n = std::min(len - done, kPage - (at % kPage));
    auto host = piece(at, n, false);
    if (!host) return -XEN_EFAULT;
    if (!fn(*host)) return 0;
    done += n;
  }
  return 0;
}

}  // namespace evmm
