#include "xen/shared_pages.h"

#include "xen/hypercall_abi.h"

namespace evmm {

namespace {
constexpr uint64_t kPage = kXenPageSize;
}

XenSharedPages::XenSharedPages(const GuestMemory& mem, uint32_t vcpus) : mem_(mem), vcpu_info_(vcpus) {
  for (auto& v : vcpu_info_) v.store(kNone);
}

GuestSlice XenSharedPages::at(uint64_t gpa, uint64_t len) const {
  auto s = mem_.slice(GuestAddress(gpa), len);
  return s ? *s : GuestSlice{};
}

GuestSlice XenSharedPages::shared_info() const {
  uint64_t gpa = shared_info_.load(std::memory_order_acquire);
  if (gpa == kNone) return {};
  return at(gpa, layout().shared_info_size);
}

GuestSlice XenSharedPages::vcpu_info(uint32_t vcpu) const {
  if (vcpu >= vcpu_info_.size()) return {};
  uint64_t gpa = vcpu_info_[vcpu].load(std::memory_order_acquire);
  if (gpa != kNone) return at(gpa, layout().vcpu_info_size);
  uint64_t si = shared_info_.load(std::memory_order_acquire);
  if (si == kNone || vcpu >= layout().legacy_vcpus) return {};
  // The legacy slots are shared_info's first member, an array of vcpu_info.
  return at(si + vcpu * layout().vcpu_info_size, layout().vcpu_info_size);
}

bool XenSharedPages::move_shared_info(uint64_t gpa) {
  GuestSlice page = at(gpa, kPage);
  uint64_t old = shared_info_.load();
  if (page.empty() || old == gpa) return false;
  GuestSlice before = old == kNone ? GuestSlice{} : at(old, kPage);
  auto copied = before.empty() ? page.fill(0, 0, kPage) : page.copy_from(before);
  if (!copied) return false;
  shared_info_.store(gpa, std::memory_order_release);
  return true;
}

int XenSharedPages::register_vcpu_info(uint32_t vcpu, uint64_t mfn, uint64_t offset) {
  const auto& l = layout();
  if (vcpu_info_[vcpu].load() != kNone) return -XEN_EINVAL;  // once per vCPU, as in Xen
  if (offset > kPage - l.vcpu_info_size || offset % (l.word_bits / 8) != 0 || mfn > (~uint64_t{0} >> 12))
    return -XEN_EINVAL;
  const uint64_t gpa = mfn * kPage + offset;
  GuestSlice dst = at(gpa, l.vcpu_info_size);
  if (dst.empty()) return -XEN_EINVAL;
  // Xen's map_vcpu_info: the new place starts as a copy of the old, with every selector bit and the
  // upcall flag set, so that the guest rescans whatever was pending.
  GuestSlice old = vcpu_info(vcpu);
  auto placed = old.empty() ? dst.fill(0, 0, dst.size()) : dst.copy_from(old);
  if (!placed || !dst.fill(l.pending_sel_offset, 0xff, l.word_bits / 8) ||
      !dst.store<uint8_t>(l.upcall_pending_offset, 1, std::memory_order_relaxed))
    return -XEN_EINVAL;
  vcpu_info_[vcpu].store(gpa, std::memory_order_release);
  return 0;
}

}  // namespace evmm
