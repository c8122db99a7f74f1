// The 2-level event channel bits (seed 002; Xen's common/event_2l.c): pending and mask bitmaps in
// shared_info, evtchn_pending_sel and evtchn_upcall_pending in each vcpu_info.
//
// The guest changes the same words at the same time (it clears pending bits, sets and clears mask
// bits, clears its selector and upcall flag), so every access here is an atomic operation on an
// aligned word of the guest's width: 64-bit words for a 64-bit guest, 32-bit words for a 32-bit one.
// All of them are sequentially consistent, which is what Xen gets from x86's locked bit operations;
// the mask/unmask race below depends on it.
#pragma once

#include <cstdint>
#include "memory/guest_slice.h"
#include "xen/xen_abi.h"

namespace evmm {

// Checked views of the guest's event channel pages. The VMM backs them with guest memory (a slice of
// GuestMemory); tests back them with plain buffers. A view must stay valid while events can be sent.
class EvtchnPages {
 public:
  virtual ~EvtchnPages() = default;
  // The guest's shared_info, or an empty slice while the guest has not placed it.
  virtual GuestSlice shared_info() const = 0;
  // vCPU vcpu's vcpu_info: where VCPUOP_register_vcpu_info put it, else its legacy slot inside
  // shared_info (vcpu < XEN_LEGACY_MAX_VCPUS); an empty slice when it has neither.
  virtual GuestSlice vcpu_info(uint32_t vcpu) const = 0;
};

// What a set_pending or unmask left for the caller to do.
enum class Delivery : uint8_t {
  None,    // nothing new: already pending, masked, or the vCPU already has its upcall flagged
  Upcall,  // evtchn_upcall_pending went 0 -> 1: inject the upcall vector into that vCPU
  Lost,    // shared_info or the vCPU's vcpu_info is missing, too small or misaligned
};

class Evtchn2l {
 public:
  Evtchn2l(XenWidth width, const EvtchnPages& pages) : layout_(&evtchn_2l_layout(width)), pages_(&pages) {}

  const Evtchn2lLayout& layout() const { return *layout_; }

  // Raises port for vcpu, in Xen's order: test-and-set the pending bit, and only on a 0 -> 1 edge of
  // an unmasked port test-and-set the vCPU's selector bit for the port's word, and only on a 0 -> 1
  // edge of that, set evtchn_upcall_pending.
  Delivery set_pending(uint32_t port, uint32_t vcpu) const;
  // EVTCHNOP_unmask: test-and-clear the mask bit; only if it was set and the port is still pending,
  // redo the selector and upcall steps. A port the guest unmasked itself is left alone, as in Xen
  // (guests re-mask before asking; Linux's evtchn_2l_unmask does).
  Delivery unmask(uint32_t port, uint32_t vcpu) const;
  // Clears the pending bit: Xen does so when a port is freed, so that a rebound port starts quiet.
  void clear_pending(uint32_t port) const;

  // Single reads, for status and tests. False when shared_info is not placed.
  bool is_pending(uint32_t port) const;
  bool is_masked(uint32_t port) const;

 private:
  const Evtchn2lLayout* layout_;
  const EvtchnPages* pages_;
};

}  // namespace evmm
