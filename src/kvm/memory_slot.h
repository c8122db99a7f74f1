// A KVM memory slot as a move-only handle: KVM_SET_USER_MEMORY_REGION installs it, and destroying
// the handle removes it (the same ioctl with memory_size 0, Documentation/virt/kvm/api.rst 4.35).
//
// Errors: what KVM_SET_USER_MEMORY_REGION returns: EEXIST for a range that overlaps another slot,
// EINVAL for an unaligned address or size or a slot number out of range.
#pragma once

#include <utility>

#include "base/result.h"
#include "kvm/kvm_uapi.h"

namespace evmm {

class VmFd;

class MemorySlot {
 public:
  // Installs `region`; the VmFd must outlive the handle, and the mapping must outlive the slot.
  static Result<MemorySlot> add(const VmFd& vm, const kvm_userspace_memory_region& region);
  MemorySlot(MemorySlot&& o) noexcept : vm_(std::exchange(o.vm_, nullptr)), region_(o.region_) {}
  MemorySlot& operator=(MemorySlot&& o) noexcept;
  MemorySlot(const MemorySlot&) = delete;
  MemorySlot& operator=(const MemorySlot&) = delete;
  ~MemorySlot() { reset(); }

  uint32_t slot() const { return region_.slot; }
  // Removes the slot now; a failure is logged, as a destructor could do nothing else with it.
  void reset();

 private:
  MemorySlot(const VmFd& vm, const kvm_userspace_memory_region& region) : vm_(&vm), region_(region) {}

  const VmFd* vm_;
  kvm_userspace_memory_region region_;
};

}  // namespace evmm
