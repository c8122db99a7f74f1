#include "kvm/memory_slot.h"

#include "base/log.h"
#include "kvm/vm_fd.h"

namespace evmm {

Result<MemorySlot> MemorySlot::add(const VmFd& vm, const kvm_userspace_memory_region& region) {
  TRY(vm.set_user_memory_region(region));
  return MemorySlot(vm, region);
}

MemorySlot& MemorySlot::operator=(MemorySlot&& o) noexcept {
  if (this != &o) {
    reset();
    vm_ = std::exchange(o.vm_, nullptr);
    region_ = o.region_;
  }
  return *this;
}

void MemorySlot::reset() {
  if (!vm_) return;
  kvm_userspace_memory_region gone = region_;
  gone.memory_size = 0;
  if (auto r = vm_->set_user_memory_region(gone); !r) LOG_WARN("removing memory slot: {}", r.error().message());
  vm_ = nullptr;
}

}  // namespace evmm
