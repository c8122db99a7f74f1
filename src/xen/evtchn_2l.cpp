#include "xen/evtchn_2l.h"

#include <cstddef>
#include <optional>

namespace evmm {

namespace {

constexpr auto kSeqCst = std::memory_order_seq_cst;

template <typename W>
constexpr W bit_in_word(uint32_t bit) {
  return W{1} << (bit % (sizeof(W) * 8));
}
template <typename W>
constexpr uint64_t word_offset(uint32_t bit) {
  return bit / (sizeof(W) * 8) * sizeof(W);
}

// Whether count words of type W at offset are inside the view and aligned for atomic access: a
// guest could place a vcpu_info anywhere.
template <typename W>
bool words_ok(const GuestSlice& view, uint64_t offset, uint64_t count) {
  return count > 0 && view.atomic_ok<W>(offset) && view.atomic_ok<W>(offset + (count - 1) * sizeof(W));
}

// The bit operations on words already checked by words_ok, so they cannot fail.
template <typename W>
bool test_and_set(const GuestSlice& view, uint64_t offset, uint32_t bit) {
  W m = bit_in_word<W>(bit);
  return view.fetch_or<W>(offset + word_offset<W>(bit), m, kSeqCst).value_or(0) & m;
}
template <typename W>
bool test_and_clear(const GuestSlice& view, uint64_t offset, uint32_t bit) {
  W m = bit_in_word<W>(bit);
  return view.fetch_and<W>(offset + word_offset<W>(bit), static_cast<W>(~m), kSeqCst).value_or(0) & m;
}
template <typename W>
bool test(const GuestSlice& view, uint64_t offset, uint32_t bit) {
  return view.load<W>(offset + word_offset<W>(bit), kSeqCst).value_or(0) & bit_in_word<W>(bit);
}

struct SharedWords {
  const Evtchn2lLayout& layout;
  const EvtchnPages& pages;

  // shared_info, when its pending and mask bitmaps can be reached, and the port is in range.
  template <typename W>
  std::optional<GuestSlice> bitmaps(uint32_t port) const {
    GuestSlice si = pages.shared_info();
    if (!words_ok<W>(si, layout.pending_offset, layout.word_bits) || !words_ok<W>(si, layout.mask_offset, layout.word_bits) ||
        port >= layout.max_ports)
      return std::nullopt;
    return si;
  }

  // Steps 2 and 3 of delivery, for a port that is pending and not masked.
  template <typename W>
  Delivery flag_vcpu(uint32_t port, uint32_t vcpu) const {
    GuestSlice vi = pages.vcpu_info(vcpu);
    if (vi.size() < layout.vcpu_info_size || !words_ok<W>(vi, layout.pending_sel_offset, 1)) return Delivery::Lost;
    if (test_and_set<W>(vi, layout.pending_sel_offset, port / layout.word_bits)) return Delivery::None;
    // Xen sets bit 0 of the byte with test_and_set_bit (vcpu_mark_events_pending).
    if (vi.fetch_or<uint8_t>(layout.upcall_pending_offset, 1, kSeqCst).value_or(1) & 1) return Delivery::None;
    return Delivery::Upcall;
  }

  template <typename W>
  Delivery set_pending(uint32_t port, uint32_t vcpu) const {
    auto si = bitmaps<W>(port);
    if (!si) return Delivery::Lost;
    if (test_and_set<W>(*si, layout.pending_offset, port)) return Delivery::None;
    if (test<W>(*si, layout.mask_offset, port)) return Delivery::None;
    return flag_vcpu<W>(port, vcpu);
  }

  // Clearing the mask before reading pending (against set_pending's set-pending-then-read-mask)
  // means that of a racing send and unmask at least one sees the other, so the edge is not lost.
  template <typename W>
  Delivery unmask(uint32_t port, uint32_t vcpu) const {
    auto si = bitmaps<W>(port);
    if (!si) return Delivery::Lost;
    if (!test_and_clear<W>(*si, layout.mask_offset, port)) return Delivery::None;
    if (!test<W>(*si, layout.pending_offset, port)) return Delivery::None;
    return flag_vcpu<W>(port, vcpu);
  }

  template <typename W>
  void clear_pending(uint32_t port) const {
    GuestSlice si = pages.shared_info();
    if (words_ok<W>(si, layout.pending_offset, layout.word_bits) && port < layout.max_ports)
      test_and_clear<W>(si, layout.pending_offset, port);
  }

  template <typename W>
  bool is_set(size_t offset, uint32_t port) const {
    GuestSlice si = pages.shared_info();
    return words_ok<W>(si, offset, layout.word_bits) && port < layout.max_ports && test<W>(si, offset, port);
  }
};

}  // namespace

Delivery Evtchn2l::set_pending(uint32_t port, uint32_t vcpu) const {
  SharedWords s{*layout_, *pages_};
  return layout_->word_bits == 64 ? s.set_pending<uint64_t>(port, vcpu) : s.set_pending<uint32_t>(port, vcpu);
}

Delivery Evtchn2l::unmask(uint32_t port, uint32_t vcpu) const {
  SharedWords s{*layout_, *pages_};
  return layout_->word_bits == 64 ? s.unmask<uint64_t>(port, vcpu) : s.unmask<uint32_t>(port, vcpu);
}

void Evtchn2l::clear_pending(uint32_t port) const {
  SharedWords s{*layout_, *pages_};
  layout_->word_bits == 64 ? s.clear_pending<uint64_t>(port) : s.clear_pending<uint32_t>(port);
}

bool Evtchn2l::is_pending(uint32_t port) const {
  SharedWords s{*layout_, *pages_};
  const size_t off = layout_->pending_offset;
  return layout_->word_bits == 64 ? s.is_set<uint64_t>(off, port) : s.is_set<uint32_t>(off, port);
}

bool Evtchn2l::is_masked(uint32_t port) const {
  SharedWords s{*layout_, *pages_};
  const size_t off = layout_->mask_offset;
  return layout_->word_bits == 64 ? s.is_set<uint64_t>(off, port) : s.is_set<uint32_t>(off, port);
}

}  // namespace evmm
