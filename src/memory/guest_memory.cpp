#include "memory/guest_memory.h"

#include <fcntl.h>
#include <sys/mman.h>
#include <unistd.h>

#include <algorithm>
#include <cstring>

#include "memory/layout.h"

namespace evmm {

namespace {
constexpr uint64_t kPage = 4096;
}

Result<GuestMemory> GuestMemory::create(std::vector<RegionSpec> specs) {
  if (specs.empty()) return make_error(EINVAL, "guest memory: no regions");
  std::sort(specs.begin(), specs.end(), [](auto& a, auto& b) { return a.start < b.start; });
  uint64_t total = 0;
  for (size_t i = 0; i < specs.size(); ++i) {
    const auto& s = specs[i];
    if (s.size == 0 || s.size % kPage || s.start.raw() % kPage)
      return make_error(EINVAL, "guest memory: region at {} is empty or not page-aligned", s.start);
    if (!s.start.checked_add(s.size)) return make_error(EINVAL, "guest memory: region at {} wraps", s.start);
    if (i > 0 && specs[i - 1].start + specs[i - 1].size > s.start)
      return make_error(EINVAL, "guest memory: regions at {} and {} overlap", specs[i - 1].start, s.start);
    if (__builtin_add_overflow(total, s.size, &total)) return make_error(EINVAL, "guest memory: too large");
  }

  int fd = ::memfd_create("evmm-guest-ram", MFD_CLOEXEC | MFD_ALLOW_SEALING);
  if (fd < 0) return errno_error("memfd_create");
  UniqueFd memfd(fd);
  if (::ftruncate(fd, static_cast<off_t>(total)) < 0) return errno_error("guest memory: ftruncate {} bytes", total);
  // Growing or shrinking the file under a mapping would turn guest accesses into SIGBUS.
  if (::fcntl(fd, F_ADD_SEALS, F_SEAL_GROW | F_SEAL_SHRINK) < 0) return errno_error("guest memory: seal");

  GuestMemory mem(std::move(memfd), {});
  uint64_t off = 0;
  for (const auto& s : specs) {
    void* p = ::mmap(nullptr, s.size, PROT_READ | PROT_WRITE, MAP_SHARED | MAP_NORESERVE, fd, static_cast<off_t>(off));
    if (p == MAP_FAILED) return errno_error("guest memory: mmap {} bytes at {}", s.size, s.start);
    // Guest RAM is not worth a core dump and must not leak into a forked child.
    ::madvise(p, s.size, MADV_DONTDUMP);
    ::madvise(p, s.size, MADV_DONTFORK);
    mem.regions_.push_back({s.start, s.size, s.kind, static_cast<uint8_t*>(p), off});
    off += s.size;
  }
  return mem;
}

Result<GuestMemory> GuestMemory::create_pc(uint64_t ram_bytes) {
  using namespace layout;
  if (ram_bytes < 2 * MiB || ram_bytes % MiB)
    return make_error(EINVAL, "guest memory: {} bytes is not a whole number of MiB of at least 2 MiB", ram_bytes);
  std::vector<RegionSpec> specs{
      {GuestAddress(0), kLowRamEnd, RegionKind::Ram},
      {GuestAddress(kBiosStart), kBiosEnd - kBiosStart, RegionKind::Bios},
  };
  // The first MiB counts towards ram_bytes, as on a PC, although part of it is the hole.
  uint64_t high = ram_bytes - kHighRamStart;
  uint64_t below_hole = std::min(high, kMmioHoleStart - kHighRamStart);
  specs.push_back({GuestAddress(kHighRamStart), below_hole, RegionKind::Ram});
  if (high > below_hole) specs.push_back({GuestAddress(kMmioHoleEnd), high - below_hole, RegionKind::Ram});
  return create(std::move(specs));
}

GuestMemory::GuestMemory(GuestMemory&& o) noexcept
    : memfd_(std::move(o.memfd_)),
      regions_(std::exchange(o.regions_, {})),
      pins_(std::move(o.pins_)) {}

GuestMemory& GuestMemory::operator=(GuestMemory&& o) noexcept {
  if (this != &o) {
    unmap();
    memfd_ = std::move(o.memfd_);
    regions_ = std::exchange(o.regions_, {});
    pins_ = std::move(o.pins_);
  }
  return *this;
}

GuestMemory::~GuestMemory() { unmap(); }

void GuestMemory::unmap() {
  if (!pins_)
    for (auto& r : regions_) ::munmap(r.host, r.size);
  regions_.clear();
  pins_.reset();  // an AddressSpace's mappings go when their last holder does
}

uint64_t GuestMemory::ram_bytes() const {
  uint64_t n = 0;
  for (auto& r : regions_)
    if (r.kind == RegionKind::Ram) n += r.size;
  return n;
}

GuestAddress GuestMemory::end() const { return regions_.empty() ? GuestAddress(0) : regions_.back().end(); }

const MemoryRegion* GuestMemory::find(GuestAddress addr) const {
  auto it = std::upper_bound(regions_.begin(), regions_.end(), addr,
                             [](GuestAddress a, const MemoryRegion& r) { return a < r.start; });
  if (it == regions_.begin()) return nullptr;
  --it;
  return it->contains(addr) ? &*it : nullptr;
}

// Calls fn(host, offset_in_access, n) for each piece of [addr, addr+len) within one region, after
// first checking that every byte is backed, so that a failing access copies nothing.
template <typename Fn>
Result<void> GuestMemory::for_each_chunk(GuestAddress addr, uint64_t len, Fn&& fn) const {
  if (!contains(addr, len)) return make_error(EFAULT, "guest access of {} bytes at {} is outside RAM", len, addr);
  uint64_t done = 0;
  while (done < len) {
    const MemoryRegion* r = find(addr + done);
    uint64_t off = (addr + done) - r->start;
    uint64_t n = std::min(len - done, r->size - off);
    fn(r->host + off, done, n);
    done += n;
  }
  return {};
}

bool GuestMemory::contains(GuestAddress addr, uint64_t len) const {
  if (len == 0) return true;
  if (!addr.checked_add(len)) return false;
  uint64_t done = 0;
  while (done < len) {
    const MemoryRegion* r = find(addr + done);
    if (!r) return false;
    done += r->size - ((addr + done) - r->start);
  }
  return true;
}

Result<void> GuestMemory::read(GuestAddress addr, std::span<uint8_t> out) const {
  return for_each_chunk(addr, out.size(),
                        [&](uint8_t* host, uint64_t at, uint64_t n) { std::memcpy(out.data() + at, host, n); });
}

Result<void> GuestMemory::write(GuestAddress addr, std::span<const uint8_t> in) const {
  return for_each_chunk(addr, in.size(),
                        [&](uint8_t* host, uint64_t at, uint64_t n) { std::memcpy(host, in.data() + at, n); });
}

Result<void> GuestMemory::fill(GuestAddress addr, uint8_t byte, uint64_t len) const {
  return for_each_chunk(addr, len, [&](uint8_t* host, uint64_t, uint64_t n) { std::memset(host, byte, n); });
}

Result<void> GuestMemory::io_vectors(GuestAddress addr, uint64_t len, std::vector<struct iovec>& out) const {
  return for_each_chunk(addr, len, [&](uint8_t* host, uint64_t, uint64_t n) { out.push_back({host, n}); });
}

kvm_userspace_memory_region GuestMemory::kvm_region(size_t index) const {
  const MemoryRegion& r = regions_[index];
  kvm_userspace_memory_region k{};
  k.slot = static_cast<uint32_t>(index);
  k.guest_phys_addr = r.start.raw();
  k.memory_size = r.size;
  k.userspace_addr = reinterpret_cast<uint64_t>(r.host);
  return k;
}

Result<GuestSlice> GuestMemory::slice(GuestAddress addr, uint64_t len) const {
  const MemoryRegion* r = find(addr);
  if (!r || len > r->size - (addr - r->start))
    return make_error(EFAULT, "guest range of {} bytes at {} is not inside one RAM region", len, addr);
  return GuestSlice(r->host + (addr - r->start), len);
}

}  // namespace evmm
