// KVM's dirty ring (KVM_CAP_DIRTY_LOG_RING_ACQ_REL, or KVM_CAP_DIRTY_LOG_RING on x86, whose ordering
// is the same total store order): instead of a bitmap per memory slot, each vCPU publishes the pages
// it dirties as entries {slot, page offset} in a ring mapped from its fd. Harvesting costs the pages
// written, not the size of guest memory, which is what a live migration's later rounds want.
//
// Protocol (the kernel's Documentation/virt/kvm/api.rst, "KVM_CAP_DIRTY_LOG_RING"):
//   - enable() on the VM before any vCPU exists, with the ring's entries per vCPU (a power of two).
//     From then on KVM_GET_DIRTY_LOG is refused for the VM: the rings are its only log.
//   - map() each vCPU's ring. harvest() reads entries from where it stopped while their DIRTY flag is
//     set (acquire), hands them out and sets RESET (release); then VmFd::reset_dirty_rings() makes KVM
//     write-protect those pages again. Read a page's contents only after that reset.
//   - A vCPU whose ring fills exits with KVM_EXIT_DIRTY_RING_FULL (exit::DirtyRingFull): harvest,
//     reset, and run it again. (evmm's own vCPU loop, whose VMs do not turn rings on, stops there.)
//
// Threads: one harvester per ring at a time; the vCPU may run meanwhile.
#pragma once

#include <cstdint>
#include <vector>

#include "base/result.h"
#include "kvm/vcpu_fd.h"
#include "kvm/vm_fd.h"

namespace evmm {

// One dirtied page: its slot and its page index in the slot.
struct DirtyGfn {
  uint32_t slot;
  uint64_t offset;
};

class DirtyRing {
 public:
  // Turns the rings on for vm; entries a power of two from 512 up to what KVM allows. EOPNOTSUPP
  // where KVM has no dirty ring, EINVAL for a bad size, KVM's errno otherwise (EINVAL once a vCPU
  // exists).
  static Result<void> enable(const VmFd& vm, uint32_t entries);
  // Maps vcpu's ring (after enable, with the same entries).
  static Result<DirtyRing> map(const VcpuFd& vcpu, uint32_t entries);

  DirtyRing(DirtyRing&& o) noexcept;
  DirtyRing& operator=(DirtyRing&&) = delete;
  ~DirtyRing();

  // Appends every entry published since the last harvest to out and marks them collected; returns
  // how many. An entry with a slot or flags KVM never writes is counted in bad() and skipped.
  size_t harvest(std::vector<DirtyGfn>& out);
  uint64_t bad() const { return bad_; }

 private:
  DirtyRing(void* map, uint32_t entries) : map_(map), entries_(entries) {}
  void* map_;
  uint32_t entries_;
  uint32_t next_ = 0;  // the next entry to look at (KVM's fetch index)
  uint64_t bad_ = 0;
};

}  // namespace evmm
