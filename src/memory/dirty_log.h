// One round of a VM's dirty log, for snapshots and live migration: the pages the guest wrote, from
// KVM's log of each memory slot (KVM_GET_DIRTY_LOG, which returns and clears it), merged with the
// pages written through the AddressSpace by evmm's devices and by attached backends
// (AddressSpace::collect_dirty, which also clears) and with the pages vhost-user backends marked in
// their logs (PageLog::take, which also clears; vhost::UserDevice::start_dirty_log). KVM's pages come
// from the slots' bitmaps or, where the VM uses it, from KVM's dirty ring. Each source is taken and cleared whole, so a
// page written once, by anyone, appears in exactly one round; a page nothing wrote never appears.
//
// DESIGN.md §4's answer to "how would vmap() work with live migration?": a device's pinned view
// (AddressSpace::map) marks its pages when it is released, so a round collected while a view is
// held does not have them yet, and the next one does.
#pragma once

#include <cstdint>
#include <span>
#include <vector>

#include "base/result.h"
#include "kvm/dirty_ring.h"
#include "kvm/vm_fd.h"
#include "memory/address_space.h"
#include "memory/page_log.h"

namespace evmm {

// A KVM memory slot made with KVM_MEM_LOG_DIRTY_PAGES over [start, start + size) of the space.
struct DirtySlot {
  uint32_t slot;
  GuestAddress start;
  uint64_t size;
};

// One round: the regions with dirty pages, each with its bitmap (bit i: the page at start + i * 4 KiB);
// KVM's bits are OR'ed in where a slot lies inside a region the space reported, and a slot with
// dirty pages elsewhere is a region of its own, and so are a log's pages outside every region (one
// region from guest address 0 per log). With rings (kvm/dirty_ring.h: the VM turned KVM's dirty
// ring on, one ring per vCPU), KVM's pages come from harvesting them, followed by
// KVM_RESET_DIRTY_RINGS, instead of the slots' bitmaps; read the pages' contents after this returns.
// EINVAL for a slot that is not whole pages, or a ring entry in a slot not given (the round is lost:
// give every slot); KVM's errors as they come.
Result<std::vector<DirtyRegion>> collect_dirty_round(const VmFd& vm, std::span<const DirtySlot> slots, AddressSpace& space,
                                                     std::span<PageLog* const> logs = {},
                                                     std::span<DirtyRing* const> rings = {});

// The guest addresses of the pages a round has, ascending (tests, and whoever copies them).
std::vector<GuestAddress> dirty_pages(const std::vector<DirtyRegion>& round);

}  // namespace evmm
