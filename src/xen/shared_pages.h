// Where a Xen guest put its shared pages (QEMU's hw/i386/kvm/xen_overlay.c and the vcpu_info part of
// xen_evtchn.c): the one shared_info, placed by XENMAPSPACE_shared_info, and each vCPU's vcpu_info,
// registered by VCPUOP_register_vcpu_info or else its legacy slot inside shared_info. Views are
// checked slices of guest memory; the event channels and Xen time reach the pages only through them.
#pragma once

#include <atomic>
#include <cstdint>
#include <vector>

#include "memory/guest_memory.h"
#include "xen/evtchn_2l.h"

namespace evmm {

class XenSharedPages final : public EvtchnPages {
 public:
  XenSharedPages(const GuestMemory& mem, uint32_t vcpus);

  GuestSlice shared_info() const override;
  GuestSlice vcpu_info(uint32_t vcpu) const override;

  // The guest width decides the layout of both pages.
  XenWidth width() const { return width_.load(); }
  void set_width(XenWidth w) { width_.store(w); }
  const Evtchn2lLayout& layout() const { return evtchn_2l_layout(width()); }

  // Moves the one shared_info to the RAM page at gpa: what the guest saw at the old place is seen
  // at the new, and a first placement starts zeroed. False when it is there already or gpa is not a
  // page of RAM.
  bool move_shared_info(uint64_t gpa);
  // VCPUOP_register_vcpu_info for vcpu at mfn:offset; 0 or -XEN_EINVAL (Xen's answers).
  int register_vcpu_info(uint32_t vcpu, uint64_t mfn, uint64_t offset);

 private:
  static constexpr uint64_t kNone = ~uint64_t{0};
  GuestSlice at(uint64_t gpa, uint64_t len) const;

  const GuestMemory& mem_;
  std::atomic<XenWidth> width_{XenWidth::Bits64};
  std::atomic<uint64_t> shared_info_{kNone};
  std::vector<std::atomic<uint64_t>> vcpu_info_;
};

}  // namespace evmm
