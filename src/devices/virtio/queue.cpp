#include "devices/virtio/queue.h"

#include "devices/virtio/virtio_abi.h"


#include <algorithm>
#include <bit>
#include <numeric>

#include "base/barrier.h"
#include "base/log.h"

namespace evmm::virtio {

namespace {

// Offsets in the rings (§2.7.6, §2.7.8); x86 hosts only, so the rings' little-endian fields are native.
constexpr uint64_t kRingIdx = 2;
constexpr uint64_t kRingEntries = 4;
uint64_t avail_entry(uint16_t i) { return kRingEntries + 2ull * i; }
uint64_t used_entry(uint16_t i) { return kRingEntries + 8ull * i; }

bool test_and_set(std::vector<uint64_t>& bits, uint32_t i) {
  uint64_t mask = 1ull << (i % 64);
  bool was = bits[i / 64] & mask;
  bits[i / 64] |= mask;
  return was;
}

}  // namespace

std::string_view to_string(QueueFault f) {
  switch (f) {
    case QueueFault::HeadOutOfRange: return "head index out of range";
    case QueueFault::NextOutOfRange: return "next index out of range";
    case QueueFault::Loop: return "descriptor loop";
    case QueueFault::ChainTooLong: return "chain too long";
    case QueueFault::TooLarge: return "chain larger than 4 GiB";
    case QueueFault::OutsideRam: return "buffer outside guest RAM";
    case QueueFault::ReadableAfterWritable: return "readable buffer after a writable one";
    case QueueFault::IndirectNotNegotiated: return "indirect descriptor not negotiated";
    case QueueFault::IndirectNested: return "nested indirect descriptor";
    case QueueFault::IndirectWithNext: return "indirect descriptor with NEXT";
    case QueueFault::IndirectBadLength: return "indirect table length";
    case QueueFault::AvailJump: return "available index jumped";
    case QueueFault::BadRing: return "ring layout refused";
  }
  return "unknown";
}

uint64_t QueueStats::total_faults() const {
  uint64_t n = 0;
  for (const auto& f : faults) n += f.load(std::memory_order_relaxed);
  return n;
}

Result<void> Virtqueue::refuse_layout(std::string_view why) {
  stats_.faults[static_cast<size_t>(QueueFault::BadRing)].fetch_add(1, std::memory_order_relaxed);
  return make_error(EINVAL, "virtqueue: {}", why);
}

Result<void> Virtqueue::activate(const GuestMemory& mem, uint64_t features) {
  const uint16_t n = layout_.size;
  if (n == 0 || n > max_size_ || !std::has_single_bit(n))
    return refuse_layout(fmt::format("size {} is not a power of two from 1 to {}", n, max_size_));
  if (layout_.desc.raw() % 16 || layout_.avail.raw() % 2 || layout_.used.raw() % 4)
    return refuse_layout(fmt::format("misaligned ring (descriptors {}, available {}, used {})", layout_.desc,
                                     layout_.avail, layout_.used));
  auto desc = mem.slice(layout_.desc, 16ull * n);
  auto avail = mem.slice(layout_.avail, avail_entry(n) + 2);
  auto used = mem.slice(layout_.used, used_entry(n) + 2);
  if (!desc || !avail || !used) return refuse_layout("a ring is not inside one region of guest RAM");
  mem_ = &mem;
  desc_ = *desc;
  avail_ = *avail;
  used_ = *used;
  event_idx_ = features & (1ull << VIRTIO_RING_F_EVENT_IDX);
  indirect_ = features & (1ull << VIRTIO_RING_F_INDIRECT_DESC);
  visited_.assign((n + 63) / 64, 0);
  writes_.assign(track_ ? n : 0, {});
  next_avail_ = next_used_ = signalled_used_ = 0;
  signalled_valid_ = false;
  broken_ = false;
  ready_ = true;
  return {};
}

void Virtqueue::resume(uint16_t next_avail) {
  if (!ready_) return;
  next_avail_ = next_avail;
  next_used_ = used_.load<uint16_t>(kRingIdx, std::memory_order_acquire).value_or(0);
}

void Virtqueue::reset() {
  ready_ = broken_ = signalled_valid_ = false;
  layout_ = {};
  mem_ = nullptr;
  desc_ = avail_ = used_ = GuestSlice();
  next_avail_ = next_used_ = signalled_used_ = 0;
}

void Virtqueue::refuse(QueueFault f) {
  uint64_t n = stats_.faults[static_cast<size_t>(f)].fetch_add(1, std::memory_order_relaxed);
  // The first of each kind is worth a line; a guest repeating it is not worth a flood.
  if (n == 0) LOG_WARN("virtqueue: refused a chain: {} (counted; further ones are not logged)", to_string(f));
}

std::optional<uint16_t> Virtqueue::next_head() {
  uint16_t idx = avail_.load<uint16_t>(kRingIdx, std::memory_order_acquire).value_or(next_avail_);
  if (idx == next_avail_) return std::nullopt;
  if (static_cast<uint16_t>(idx - next_avail_) > layout_.size) {
    broken_ = true;
    refuse(QueueFault::AvailJump);
    return std::nullopt;
  }
  auto head = avail_.read_obj<uint16_t>(avail_entry(next_avail_ % layout_.size));
  ++next_avail_;
  return head.value_or(UINT16_MAX);
}

Virtqueue::Pop Virtqueue::pop(DescriptorChain& out) {
  if (!ready_) return Pop::Empty;
  for (;;) {
    if (broken_) return Pop::Broken;
    auto head = next_head();
    if (broken_) return Pop::Broken;
    if (!head) {
      if (!event_idx_) return Pop::Empty;
      // §2.7.10: ask for a notification once the driver passes next_avail_, then look again: a
      // chain published before the driver could see avail_event would otherwise wait forever.
      (void)used_.store<uint16_t>(used_entry(layout_.size), next_avail_, std::memory_order_release);
      if (log_) log_->mark(layout_.used + used_entry(layout_.size), 2);
      full_barrier();
      if (avail_.load<uint16_t>(kRingIdx, std::memory_order_acquire).value_or(next_avail_) == next_avail_)
        return Pop::Empty;
      continue;
    }
    if (*head >= layout_.size) {
      refuse(QueueFault::HeadOutOfRange);
      continue;
    }
    if (auto fault = walk(*head, out)) {
      refuse(*fault);
      if (track_) writes_[*head].clear();  // nothing written: the head's last chain's buffers are not this one's
      add_used(*head, 0);
      continue;
    }
    if (track_) writes_[*head].assign(out.descs.begin() + static_cast<ptrdiff_t>(out.readable), out.descs.end());
    stats_.chains.fetch_add(1, std::memory_order_relaxed);
    return Pop::Chain;
  }
}

std::optional<QueueFault> Virtqueue::push(const vring_desc& d, DescriptorChain& out) {
  const bool writable = d.flags & VRING_DESC_F_WRITE;
  if (!writable && out.descs.size() > out.readable) return QueueFault::ReadableAfterWritable;
  if (!mem_->contains(GuestAddress(d.addr), d.len)) return QueueFault::OutsideRam;
  if (out.readable_bytes + out.writable_bytes + d.len > UINT32_MAX) return QueueFault::TooLarge;
  out.descs.push_back({GuestAddress(d.addr), d.len, writable});
  if (writable) {
    out.writable_bytes += d.len;
  } else {
    ++out.readable;
    out.readable_bytes += d.len;
  }
  return std::nullopt;
}

std::optional<QueueFault> Virtqueue::walk(uint16_t head, DescriptorChain& out) {
  out.head = head;
  out.descs.clear();
  out.readable = 0;
  out.readable_bytes = out.writable_bytes = 0;
  std::fill(visited_.begin(), visited_.end(), 0);
  uint32_t count = 0;
  for (uint16_t i = head;;) {
    if (test_and_set(visited_, i)) return QueueFault::Loop;
    if (++count > layout_.size) return QueueFault::ChainTooLong;
    auto d = desc_.read_obj<vring_desc>(16ull * i);
    if (!d) return QueueFault::OutsideRam;  // cannot happen: the table was checked at activation
    if (d->flags & VRING_DESC_F_INDIRECT) {
      if (!indirect_) return QueueFault::IndirectNotNegotiated;
      if (d->flags & VRING_DESC_F_NEXT) return QueueFault::IndirectWithNext;
      return walk_indirect(*d, out, count);
    }
    if (auto f = push(*d, out)) return f;
    if (!(d->flags & VRING_DESC_F_NEXT)) return std::nullopt;
    if (d->next >= layout_.size) return QueueFault::NextOutOfRange;
    i = d->next;
  }
}

std::optional<QueueFault> Virtqueue::walk_indirect(const vring_desc& table, DescriptorChain& out, uint32_t& count) {
  if (table.len == 0 || table.len % sizeof(vring_desc)) return QueueFault::IndirectBadLength;
  const uint32_t n = table.len / sizeof(vring_desc);
  if (n > kMaxIndirect) return QueueFault::ChainTooLong;
  // One copy of the whole table: the guest cannot change a descriptor between its check and its use.
  std::vector<vring_desc> descs(n);
  // SAFETY: descs holds n trivially copyable descriptors, n * sizeof(vring_desc) bytes.
  if (!mem_->read(GuestAddress(table.addr), std::span(reinterpret_cast<uint8_t*>(descs.data()), table.len)))
    return QueueFault::OutsideRam;
  std::vector<uint64_t> seen((n + 63) / 64, 0);
  for (uint32_t i = 0;;) {
    if (test_and_set(seen, i)) return QueueFault::Loop;
    ++count;
    const vring_desc& d = descs[i];
    if (d.flags & VRING_DESC_F_INDIRECT) return QueueFault::IndirectNested;
    if (auto f = push(d, out)) return f;
    if (!(d.flags & VRING_DESC_F_NEXT)) return std::nullopt;
    if (d.next >= n) return QueueFault::NextOutOfRange;
    i = d.next;
  }
}

void Virtqueue::add_used(uint16_t head, uint32_t written) {
  if (!ready_) return;
  vring_used_elem e{head, written};
  const uint64_t entry = used_entry(next_used_ % layout_.size);
  (void)used_.write_obj(entry, e);
  ++next_used_;
  (void)used_.store<uint16_t>(kRingIdx, next_used_, std::memory_order_release);
  const bool tracked = head < writes_.size();
  if (log_) {
    if (tracked)
      for (const Descriptor& d : writes_[head]) log_->mark(d.addr, d.len);
    log_->mark(layout_.used + entry, sizeof e);
    log_->mark(layout_.used + kRingIdx, 2);
  }
  if (tracked) writes_[head].clear();
}

bool Virtqueue::needs_interrupt() {
  if (!ready_) return false;
  // The used index store must be visible before the driver's suppression fields are read (§2.7.10).
  full_barrier();
  const uint16_t old = signalled_used_, now = next_used_;
  if (signalled_valid_ && old == now) return false;
  bool want;
  if (event_idx_) {
    uint16_t event = avail_.load<uint16_t>(avail_entry(layout_.size), std::memory_order_relaxed).value_or(now);
    // vring_need_event(): the driver's used_event lies in (old, now].
    want = !signalled_valid_ || static_cast<uint16_t>(now - event - 1) < static_cast<uint16_t>(now - old);
  } else {
    want = !(avail_.load<uint16_t>(0, std::memory_order_relaxed).value_or(0) & VRING_AVAIL_F_NO_INTERRUPT);
  }
  signalled_used_ = now;
  signalled_valid_ = true;
  if (want) stats_.notifications.fetch_add(1, std::memory_order_relaxed);
  return want;
}

}  // namespace evmm::virtio
