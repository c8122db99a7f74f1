// A virtio-blk driver in the host for vhost-user-blk backends (tests and benchmarks): its "guest
// memory" is a memfd it shares with the backend through SET_MEM_TABLE, and it writes the split ring
// there itself, so no VM is needed. One request at a time.
#pragma once

#include <linux/virtio_blk.h>
#include <poll.h>
#include <sys/eventfd.h>
#include <sys/mman.h>
#include <unistd.h>

#include <cstring>
#include <string>
#include <vector>

#include "devices/virtio/virtio_abi.h"
#include "vhost/frontend.h"

namespace evmm::testing {

using vhost::Frontend;

inline constexpr const char* kQemuStorageDaemon = "/usr/bin/qemu-storage-daemon";

// qemu-storage-daemon exporting image, writable, as vhost-user-blk on a Unix socket at sock.
inline std::vector<std::string> qsd_blk_export(const std::string& image, const std::string& sock) {
  return {kQemuStorageDaemon, "--blockdev", "driver=file,node-name=file0,filename=" + image, "--blockdev",
          "driver=raw,node-name=disk0,file=file0", "--export",
          "type=vhost-user-blk,id=exp0,node-name=disk0,writable=on,addr.type=unix,addr.path=" + sock};
}

// A one-queue virtio-blk driver on a memfd: ring of 8 at 0x0 (descriptors), 0x100 (avail), 0x200
// (used); request header at 0x1000, status at 0x3000, data at kData.
class BlkDriver {
 public:
  static constexpr uint64_t kRam = 4 << 20;
  static constexpr uint16_t kSize = 8;

  Result<void> open(Frontend& fe) {
    mem_ = UniqueFd(::memfd_create("driver-ram", MFD_CLOEXEC));
    if (mem_.get() < 0 || ::ftruncate(mem_.get(), kRam) != 0) return errno_error("memfd");
    void* p = ::mmap(nullptr, kRam, PROT_READ | PROT_WRITE, MAP_SHARED, mem_.get(), 0);
    if (p == MAP_FAILED) return errno_error("mmap");
    ram_ = static_cast<uint8_t*>(p);
    kick_ = UniqueFd(::eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK));
    call_ = UniqueFd(::eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK));
    const auto base = reinterpret_cast<uint64_t>(ram_);
    Frontend::Region region{0, kRam, base, mem_.get(), 0};
    TRY(fe.set_mem_table({&region, 1}));
    return fe.start_ring(0, Frontend::Ring{kSize, base, base + 0x100, base + 0x200, 0, kick_.get(), call_.get(), 0x200});
  }
  ~BlkDriver() {
    if (ram_) ::munmap(ram_, kRam);
  }
  // Where request data goes: up to kMaxData bytes.
  static constexpr uint64_t kData = 0x100000, kMaxData = 2 << 20;
  uint8_t* data() { return ram_ + kData; }

  // One request: header, optional data (written by the device when reading), status. Returns the status.
  Result<uint8_t> request(uint32_t type, uint64_t sector, uint32_t len) {
    virtio_blk_outhdr hdr{type, 0, sector};
    std::memcpy(ram_ + 0x1000, &hdr, sizeof hdr);
    ram_[0x3000] = 0xff;
    uint16_t n = 0;
    put_desc(n++, 0x1000, sizeof hdr, VRING_DESC_F_NEXT);
    if (len) put_desc(n++, kData, len, VRING_DESC_F_NEXT | (type == VIRTIO_BLK_T_IN ? VRING_DESC_F_WRITE : 0));
    put_desc(n, 0x3000, 1, VRING_DESC_F_WRITE);
    const uint16_t slot = avail_idx_ % kSize;
    std::memcpy(ram_ + 0x104 + 2 * slot, "\0\0", 2);  // head 0
    __atomic_store_n(reinterpret_cast<uint16_t*>(ram_ + 0x102), ++avail_idx_, __ATOMIC_RELEASE);
    const uint64_t one = 1;
    if (::write(kick_.get(), &one, 8) != 8) return errno_error("kick");
    // The backend calls when it has used the chain.
    for (;;) {
      const uint16_t used = __atomic_load_n(reinterpret_cast<uint16_t*>(ram_ + 0x202), __ATOMIC_ACQUIRE);
      if (used == avail_idx_) break;
      pollfd p{call_.get(), POLLIN, 0};
      if (::poll(&p, 1, 10000) != 1) return make_error(ETIMEDOUT, "no call for request {}", avail_idx_);
      uint64_t v;
      (void)!::read(call_.get(), &v, 8);
    }
    return ram_[0x3000];
  }
  uint16_t requests() const { return avail_idx_; }

 private:
  void put_desc(uint16_t i, uint64_t addr, uint32_t len, uint16_t flags) {
    vring_desc d{addr, len, flags, static_cast<uint16_t>(i + 1)};
    std::memcpy(ram_ + 16 * i, &d, sizeof d);
  }
  UniqueFd mem_, kick_, call_;
  uint8_t* ram_ = nullptr;
  uint16_t avail_idx_ = 0;
};

}  // namespace evmm::testing
