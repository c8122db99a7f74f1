#include "memory/dirty_log.h"

#include <algorithm>
#include <bit>

namespace evmm {

namespace {

constexpr uint64_t kPage = 4096;

// KVM's pages of each slot from the vCPUs' rings, then the reset that re-protects them.
Result<void> harvest_rings(const VmFd& vm, std::span<const DirtySlot> slots, std::span<DirtyRing* const> rings,
                           std::vector<std::vector<uint64_t>>& bitmaps) {
  std::vector<DirtyGfn> gfns;
  for (DirtyRing* r : rings) r->harvest(gfns);
  TRY(vm.reset_dirty_rings());
  for (const DirtyGfn& g : gfns) {
    auto s = std::find_if(slots.begin(), slots.end(), [&](const DirtySlot& d) { return d.slot == g.slot; });
    if (s == slots.end() || g.offset >= s->size / kPage)
      return make_error(EINVAL, "dirty ring: page {:#x} of slot {:#x}, which was not given", g.offset, g.slot);
    auto& b = bitmaps[size_t(s - slots.begin())];
    b[g.offset / 64] |= 1ull << (g.offset % 64);
  }
  return {};
}

}  // namespace

Result<std::vector<DirtyRegion>> collect_dirty_round(const VmFd& vm, std::span<const DirtySlot> slots, AddressSpace& space,
                                                     std::span<PageLog* const> logs, std::span<DirtyRing* const> rings) {
  for (const auto& s : slots)
    if (s.start.raw() % kPage || s.size % kPage || s.size == 0)
      return make_error(EINVAL, "dirty log: slot {} at {:#x}+{:#x} is not whole pages", s.slot, s.start.raw(), s.size);
  // KVM's logs first: a page the guest writes while the space's log is taken lands in this round or
  // the next, never in both, since each bitmap is taken and cleared at once.
  std::vector<std::vector<uint64_t>> kvm(slots.size());
  for (size_t i = 0; i < slots.size(); ++i) kvm[i].assign((slots[i].size / kPage + 63) / 64, 0);
  if (!rings.empty()) TRY(harvest_rings(vm, slots, rings, kvm));
  else
    for (size_t i = 0; i < slots.size(); ++i) TRY(vm.get_dirty_log(slots[i].slot, kvm[i]));
  std::vector<DirtyRegion> round = space.collect_dirty();
  for (size_t i = 0; i < slots.size(); ++i) {
    const DirtySlot& s = slots[i];
    auto inside = std::find_if(round.begin(), round.end(), [&](const DirtyRegion& r) {
      return s.start.raw() >= r.start.raw() && s.start.raw() + s.size <= r.start.raw() + r.size;
    });
    if (inside == round.end()) {
      if (std::all_of(kvm[i].begin(), kvm[i].end(), [](uint64_t w) { return w == 0; })) continue;
      round.push_back(DirtyRegion{s.start, s.size, std::move(kvm[i])});
      continue;
    }
    const uint64_t first = (s.start.raw() - inside->start.raw()) / kPage;
    for (uint64_t p : set_pages(kvm[i])) {
      const uint64_t page = first + p;
      inside->bitmap[page / 64] |= 1ull << (page % 64);
    }
  }
  // The backends' logs last: each is indexed by guest page from address 0.
  for (PageLog* log : logs) {
    std::vector<uint64_t> words = log->take(), loose(words.size(), 0);
    bool any_loose = false;
    for (uint64_t page : set_pages(words)) {
      const uint64_t addr = page * kPage;
      auto inside = std::find_if(round.begin(), round.end(), [&](const DirtyRegion& r) {
        return addr >= r.start.raw() && addr - r.start.raw() < r.size;
      });
      if (inside == round.end()) {
        loose[page / 64] |= 1ull << (page % 64);
        any_loose = true;
        continue;
      }
      const uint64_t at = (addr - inside->start.raw()) / kPage;
      inside->bitmap[at / 64] |= 1ull << (at % 64);
    }
    if (any_loose) round.push_back(DirtyRegion{GuestAddress(0), log->limit(), std::move(loose)});
  }
  return round;
}

std::vector<GuestAddress> dirty_pages(const std::vector<DirtyRegion>& round) {
  std::vector<GuestAddress> out;
  for (const auto& r : round)
    for (uint64_t page : set_pages(r.bitmap))
      if (page * kPage < r.size) out.push_back(GuestAddress(r.start.raw() + page * kPage));
  std::sort(out.begin(), out.end(), [](GuestAddress a, GuestAddress b) { return a.raw() < b.raw(); });
  // A slot across two of the space's regions came as a region of its own: a page once.
  out.erase(std::unique(out.begin(), out.end(), [](GuestAddress a, GuestAddress b) { return a.raw() == b.raw(); }), out.end());
  return out;
}

}  // namespace evmm
