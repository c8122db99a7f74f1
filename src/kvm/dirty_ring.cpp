#include "kvm/dirty_ring.h"

#include <sys/mman.h>
#include <unistd.h>

#include <atomic>
#include <bit>
#include <utility>

namespace evmm {

namespace {

constexpr uint32_t kMinEntries = 512;  // a ring smaller than KVM's reserved soft-full margin is refused
constexpr size_t kGfnSize = sizeof(kvm_dirty_gfn);

int ring_cap(const VmFd& vm, int& cap) {
  if (int max = vm.check_extension(KVM_CAP_DIRTY_LOG_RING_ACQ_REL); max > 0) {
    cap = KVM_CAP_DIRTY_LOG_RING_ACQ_REL;
    return max;
  }
  cap = KVM_CAP_DIRTY_LOG_RING;
  return vm.check_extension(KVM_CAP_DIRTY_LOG_RING);
}

}  // namespace

Result<void> DirtyRing::enable(const VmFd& vm, uint32_t entries) {
  int cap;
  const int max_bytes = ring_cap(vm, cap);
  if (max_bytes <= 0) return make_error(EOPNOTSUPP, "dirty ring: KVM has no KVM_CAP_DIRTY_LOG_RING");
  const uint64_t bytes = uint64_t{entries} * kGfnSize;
  if (!std::has_single_bit(entries) || entries < kMinEntries || bytes > uint64_t(max_bytes))
    return make_error(EINVAL, "dirty ring: {} entries (a power of two from {} to {})", entries, kMinEntries,
                      max_bytes / int(kGfnSize));
  return vm.enable_cap(uint32_t(cap), bytes);
}

Result<DirtyRing> DirtyRing::map(const VcpuFd& vcpu, uint32_t entries) {
  const long page = ::sysconf(_SC_PAGESIZE);
  void* p = ::mmap(nullptr, size_t(entries) * kGfnSize, PROT_READ | PROT_WRITE, MAP_SHARED, vcpu.fd(),
                   KVM_DIRTY_LOG_PAGE_OFFSET * page);
  if (p == MAP_FAILED) return errno_error("dirty ring: mmap {} entries of vCPU fd {}", entries, vcpu.fd());
  return DirtyRing(p, entries);
}

DirtyRing::DirtyRing(DirtyRing&& o) noexcept
    : map_(std::exchange(o.map_, nullptr)), entries_(o.entries_), next_(o.next_), bad_(o.bad_) {}

DirtyRing::~DirtyRing() {
  if (map_) ::munmap(map_, size_t(entries_) * kGfnSize);
}

size_t DirtyRing::harvest(std::vector<DirtyGfn>& out) {
  auto* ring = static_cast<kvm_dirty_gfn*>(map_);
  size_t n = 0;
  for (;; ++next_, ++n) {
    kvm_dirty_gfn& e = ring[next_ & (entries_ - 1)];
    const uint32_t flags = std::atomic_ref<uint32_t>(e.flags).load(std::memory_order_acquire);
    if (!(flags & KVM_DIRTY_GFN_F_DIRTY)) break;
    if (flags & ~uint32_t(KVM_DIRTY_GFN_F_MASK)) ++bad_;
    else out.push_back(DirtyGfn{e.slot, e.offset});
    // Collected: KVM's reset may reuse the entry once it sees this flag.
    std::atomic_ref<uint32_t>(e.flags).store(KVM_DIRTY_GFN_F_RESET, std::memory_order_release);
  }
  return n;
}

}  // namespace evmm
