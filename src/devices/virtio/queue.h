// A split virtqueue (virtio 1.2 §2.7), as the device sees it: the walker trusts nothing in guest memory.
//
// Rules:
//   - The driver's rings are checked once, when the queue is made ready (activate): the size is a
//     power of two no larger than the device's maximum, and each ring lies in one RAM region at the
//     alignment §2.7 asks (descriptor table 16, available ring 2, used ring 4).
//   - Every chain is copied descriptor by descriptor into host memory and checked before a device
//     sees it: indexes, loops, length, total size, buffers inside RAM, readable buffers before writable
//     ones (§2.7.4.2), indirect tables (§2.7.5.3: negotiated, not nested, not with NEXT, a whole number
//     of descriptors). A refused chain is counted by its fault, handed back to the driver in the used
//     ring with length 0, and the walk goes on with the next one: the device keeps serving.
//   - An available index more than the queue size past the last one seen cannot come from a correct
//     driver and leaves nothing to trust: the queue is broken until reset, pop() says so, and the
//     transport sets DEVICE_NEEDS_RESET.
//   - The avail index is loaded with acquire order and the used index stored with release order,
//     through memory/'s atomic accessors, so a chain's contents are read after the index that
//     published them and a used entry is visible before its index.
//   - Notifications both ways follow VIRTIO_F_EVENT_IDX when negotiated (§2.7.7, §2.7.10).
//
// Threads: one device thread at a time uses a ready queue (the transport's lock serialises it with
// the register accesses that reset it). Counters may be read from anywhere.
#pragma once

#include <array>
#include <atomic>
#include <cstdint>
#include <optional>
#include <string_view>
#include <vector>

#include "base/result.h"
#include "memory/guest_memory.h"
#include "memory/page_log.h"

struct vring_desc;  // linux/virtio_ring.h, through devices/virtio/virtio_abi.h

namespace evmm::virtio {

// Why a chain, or the queue, was refused. Each has its own counter (QueueStats::faults).
enum class QueueFault : uint8_t {
  HeadOutOfRange,         // an available ring entry names no descriptor; nothing can be returned
  NextOutOfRange,         // a descriptor's next field names no descriptor of its table
  Loop,                   // a chain visits a descriptor twice
  ChainTooLong,           // more descriptors than the queue size (an indirect table: kMaxIndirect)
  TooLarge,               // the chain's buffers add up to more than a used length can say (4 GiB)
  OutsideRam,             // a buffer or indirect table not wholly inside guest RAM
  ReadableAfterWritable,  // a device-readable buffer after a device-writable one (§2.7.4.2)
  IndirectNotNegotiated,  // VIRTQ_DESC_F_INDIRECT without VIRTIO_F_INDIRECT_DESC
  IndirectNested,         // an indirect descriptor inside an indirect table
  IndirectWithNext,       // INDIRECT and NEXT on one descriptor (§2.7.5.3.1)
  IndirectBadLength,      // an indirect table of 0 bytes or not a multiple of 16
  AvailJump,              // the available index ran more than a queue size ahead: the queue breaks
  BadRing,                // the size or a ring address was refused when the queue was made ready
};
constexpr size_t kQueueFaultCount = static_cast<size_t>(QueueFault::BadRing) + 1;
std::string_view to_string(QueueFault f);

struct QueueStats {
  std::array<std::atomic<uint64_t>, kQueueFaultCount> faults{};
  std::atomic<uint64_t> chains{0};         // chains handed to the device
  std::atomic<uint64_t> notifications{0};  // interrupts the queue asked for
  uint64_t fault(QueueFault f) const { return faults[static_cast<size_t>(f)].load(std::memory_order_relaxed); }
  uint64_t total_faults() const;
};

// One buffer of a chain, checked to lie in guest RAM.
struct Descriptor {
  GuestAddress addr;
  uint32_t len;
  bool writable;  // device-writable (VIRTQ_DESC_F_WRITE)
};

// A checked chain: the readable buffers first, then the writable ones.
struct DescriptorChain {
  uint16_t head = 0;
  std::vector<Descriptor> descs;
  size_t readable = 0;         // descs[0, readable) are device-readable, the rest device-writable
  uint64_t readable_bytes = 0;
  uint64_t writable_bytes = 0;
};

// What the driver programmed through the transport's registers.
struct QueueLayout {
  uint16_t size = 0;
  GuestAddress desc{0}, avail{0}, used{0};
};

class Virtqueue {
 public:
  // Largest indirect table walked, as QEMU's VIRTQUEUE_MAX_SIZE: Linux may make one longer than the
  // queue (virtqueue_add_split), so the queue size does not bound it.
  static constexpr uint32_t kMaxIndirect = 1024;
  static constexpr uint16_t kMaxSize = 32768;  // §2.7: the largest split queue

  explicit Virtqueue(uint16_t max_size = 0) : max_size_(max_size) {}
  Virtqueue(const Virtqueue&) = delete;
  Virtqueue& operator=(const Virtqueue&) = delete;
  // For an array of queues made before their sizes are known; before the queue is first used.
  void set_max_size(uint16_t n) { max_size_ = n; }

  uint16_t max_size() const { return max_size_; }
  QueueLayout& layout() { return layout_; }
  const QueueLayout& layout() const { return layout_; }
  bool ready() const { return ready_; }

  // Checks the layout against guest memory and makes the queue ready; EINVAL with the reason (and a
  // BadRing count) when refused. features: the negotiated ones (EVENT_IDX, INDIRECT_DESC).
  Result<void> activate(const GuestMemory& mem, uint64_t features);
  // After activate(), for a queue that continues where another owner left it (a vhost-user backend
  // given VHOST_USER_SET_VRING_BASE): the next available entry to take is next_avail, and used
  // entries continue from the used ring's own index, as the driver sees it.
  void resume(uint16_t next_avail);
  // The next available entry the device will take (VHOST_USER_GET_VRING_BASE).
  uint16_t next_avail() const { return next_avail_; }
  // Back to the state after device reset: not ready, indexes zero; counters stay.
  void reset();

  enum class Pop { Chain, Empty, Broken };
  // The next available chain into out (its storage is reused). Refused chains are counted, returned
  // to the driver with length 0 and skipped. Empty re-arms the driver's notification first (with
  // EVENT_IDX, avail_event) and checks once more, so a chain made available meanwhile is not missed.
  Pop pop(DescriptorChain& out);
  // Returns a chain to the driver with the number of bytes the device wrote into it.
  void add_used(uint16_t head, uint32_t written);
  // Whether the driver wants an interrupt for the used entries added since the last call that said
  // yes (§2.7.10); counts it.
  bool needs_interrupt();
  bool broken() const { return broken_; }
  const QueueStats& stats() const { return stats_; }

  // Dirty logging, for a device whose writes another process must learn of (a vhost-user backend
  // under VHOST_F_LOG_ALL, for the frontend's live migration); in-process devices leave it off.
  // track_writes keeps each popped chain's writable buffers until add_used, so that a log set while
  // a chain is in flight still covers it. With a log set, add_used marks, after the writes, the
  // chain's writable buffers whole (a device may write more than the length it reports) and the
  // used entry and index; pop marks the avail_event it stores. nullptr: no log.
  void track_writes(bool on) { track_ = on; }
  void set_write_log(PageLog* log) { log_ = log; }

 private:
  Result<void> refuse_layout(std::string_view why);
  std::optional<QueueFault> walk(uint16_t head, DescriptorChain& out);
  std::optional<QueueFault> walk_indirect(const ::vring_desc& d, DescriptorChain& out, uint32_t& count);
  std::optional<QueueFault> push(const ::vring_desc& d, DescriptorChain& out);
  std::optional<uint16_t> next_head();
  void refuse(QueueFault f);

  uint16_t max_size_;
  QueueLayout layout_;
  bool ready_ = false;
  bool broken_ = false;
  bool event_idx_ = false;
  bool indirect_ = false;
  const GuestMemory* mem_ = nullptr;
  GuestSlice desc_, avail_, used_;
  uint16_t next_avail_ = 0;
  uint16_t next_used_ = 0;
  uint16_t signalled_used_ = 0;
  bool signalled_valid_ = false;
  std::vector<uint64_t> visited_;  // one bit per descriptor of the table being walked
  bool track_ = false;
  PageLog* log_ = nullptr;
  std::vector<std::vector<Descriptor>> writes_;  // track_: by head, the writable buffers of a chain in flight
  QueueStats stats_;
};

}  // namespace evmm::virtio
