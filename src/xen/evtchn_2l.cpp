#include "xen/evtchn_2l.h"

#include <cstddef>

namespace evmm {

namespace {

// count words of type W at offset in a host view of guest memory, or nullptr when the view is too
// short or the words would be misaligned (an atomic operation needs its natural alignment; a guest
// could place a vcpu_info anywhere).
template <typename W>
W* words_at(std::span<uint8_t> view, size_t offset, size_t count) {
  if (view.size() < offset || (view.size() - offset) / sizeof(W) < count) return nullptr;
  uint8_t* p = view.data() + offset;
  if (reinterpret_cast<uintptr_t>(p) % alignof(W) != 0) return nullptr;
  // SAFETY: in bounds and aligned, checked above; the guest shares the memory, so it is only ever
  // touched through the __atomic builtins below.
  return reinterpret_cast<W*>(p);
}

template <typename W>
constexpr W bit_in_word(uint32_t bit) {
  return W{1} << (bit % (sizeof(W) * 8));
}
template <typename W>
constexpr uint32_t word_of(uint32_t bit) {
  return bit / (sizeof(W) * 8);
}

template <typename W>
bool test_and_set(W* words, uint32_t bit) {
  W m = bit_in_word<W>(bit);
  return __atomic_fetch_or(&words[word_of<W>(bit)], m, __ATOMIC_SEQ_CST) & m;
}
template <typename W>
bool test_and_clear(W* words, uint32_t bit) {
  W m = bit_in_word<W>(bit);
  return __atomic_fetch_and(&words[word_of<W>(bit)], static_cast<W>(~m), __ATOMIC_SEQ_CST) & m;
}
template <typename W>
bool test(const W* words, uint32_t bit) {
  return __atomic_load_n(&words[word_of<W>(bit)], __ATOMIC_SEQ_CST) & bit_in_word<W>(bit);
}

struct SharedWords {
  const Evtchn2lLayout& layout;
  const EvtchnPages& pages;

  template <typename W>
  W* pending() const {
    return words_at<W>(pages.shared_info(), layout.pending_offset, layout.word_bits);
  }
  template <typename W>
  W* mask() const {
    return words_at<W>(pages.shared_info(), layout.mask_offset, layout.word_bits);
  }

  // Steps 2 and 3 of delivery, for a port that is pending and not masked.
  template <typename W>
  Delivery flag_vcpu(uint32_t port, uint32_t vcpu) const {
    std::span<uint8_t> vi = pages.vcpu_info(vcpu);
    if (vi.size() < layout.vcpu_info_size) return Delivery::Lost;
    W* sel = words_at<W>(vi, layout.pending_sel_offset, 1);
    if (sel == nullptr) return Delivery::Lost;
    if (test_and_set(sel, port / layout.word_bits)) return Delivery::None;
    // Xen sets bit 0 of the byte with test_and_set_bit (vcpu_mark_events_pending).
    uint8_t* upcall = vi.data() + layout.upcall_pending_offset;
    if (__atomic_fetch_or(upcall, uint8_t{1}, __ATOMIC_SEQ_CST) & 1) return Delivery::None;
    return Delivery::Upcall;
  }

  template <typename W>
  Delivery set_pending(uint32_t port, uint32_t vcpu) const {
    W* p = pending<W>();
    W* m = mask<W>();
    if (p == nullptr || m == nullptr || port >= layout.max_ports) return Delivery::Lost;
    if (test_and_set(p, port)) return Delivery::None;
    if (test(m, port)) return Delivery::None;
    return flag_vcpu<W>(port, vcpu);
  }

  // Clearing the mask before reading pending (against set_pending's set-pending-then-read-mask)
  // means that of a racing send and unmask at least one sees the other, so the edge is not lost.
  template <typename W>
  Delivery unmask(uint32_t port, uint32_t vcpu) const {
    W* p = pending<W>();
    W* m = mask<W>();
    if (p == nullptr || m == nullptr || port >= layout.max_ports) return Delivery::Lost;
    if (!test_and_clear(m, port)) return Delivery::None;
    if (!test(p, port)) return Delivery::None;
    return flag_vcpu<W>(port, vcpu);
  }

  template <typename W>
  void clear_pending(uint32_t port) const {
    if (W* p = pending<W>(); p != nullptr && port < layout.max_ports) test_and_clear(p, port);
  }

  template <typename W>
  bool is_set(W* words, uint32_t port) const {
    return words != nullptr && port < layout.max_ports && test(words, port);
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
  return layout_->word_bits == 64 ? s.is_set(s.pending<uint64_t>(), port) : s.is_set(s.pending<uint32_t>(), port);
}

bool Evtchn2l::is_masked(uint32_t port) const {
  SharedWords s{*layout_, *pages_};
  return layout_->word_bits == 64 ? s.is_set(s.mask<uint64_t>(), port) : s.is_set(s.mask<uint32_t>(), port);
}

}  // namespace evmm
