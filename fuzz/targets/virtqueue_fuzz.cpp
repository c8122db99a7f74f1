// The split-virtqueue walker (devices/virtio/queue.h) over rings whose every byte the input chooses.
// Input: a features byte (bit 0 INDIRECT_DESC, bit 1 EVENT_IDX), a queue-size byte (any value: the
// walker must refuse what is not a power of two up to 16), 2 bytes of ring offset, 2 bytes of image
// length, that many bytes of the guest's 16 KiB from address 0 (the rest zero), then operations: a byte for the new avail index (two bytes if bit 7 of a
// leading byte says so) and pops until the queue is empty or broken.
// Invariants (queue.h): every chain handed out has buffers wholly inside RAM, readable ones first,
// at most 4 GiB in all and no more descriptors than the walker's bounds allow; each consumed head is
// either handed out, or counted as a fault; a broken queue stays broken; the used index only moves by
// what was returned; nothing outside guest RAM is touched (the sanitizers and the mapping's end).
#include <cstdint>

#include "devices/virtio/queue.h"
#include "devices/virtio/virtio_abi.h"
#include "fuzz_input.h"
#include "fuzz_memory.h"
#include "memory/guest_memory.h"

using namespace evmm;
using namespace evmm::virtio;

namespace {

constexpr uint64_t kMemBytes = 16 * 1024;

}  // namespace

extern "C" int LLVMFuzzerInitialize(int*, char***) {
  fuzz_quiet_logs();
  return 0;
}

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  fuzz::Input in(data, size);
  const GuestMemory& mem = fuzz::zeroed_memory<kMemBytes>();
  const uint8_t flags = in.u8();
  const uint64_t features = ((flags & 1) ? 1ull << VIRTIO_RING_F_INDIRECT_DESC : 0) |
                            ((flags & 2) ? 1ull << VIRTIO_RING_F_EVENT_IDX : 0);
  Virtqueue q(16);
  q.layout().size = in.u8();
  // The rings sit at an input-chosen place in the first KiB (misaligned ones are refused).
  const uint64_t base = in.le(2) & 0x3ff;
  q.layout().desc = GuestAddress(base);
  q.layout().avail = GuestAddress(base + 0x400);
  q.layout().used = GuestAddress(base + 0x800);
  auto image = in.bytes(in.le(2) % (kMemBytes + 1));
  FUZZ_CHECK(mem.write(GuestAddress(0), image));
  // A driver zeroes the used ring before it makes the queue ready (§2.7.8); the count below needs it.
  FUZZ_CHECK(mem.write_obj<uint16_t>(GuestAddress(base + 0x800 + 2), 0));
  if (!q.activate(mem, features)) {
    FUZZ_CHECK(q.stats().fault(QueueFault::BadRing) == 1);
    return 0;
  }
  const uint16_t n = q.layout().size;
  DescriptorChain chain;
  uint64_t handed = 0, returned = 0;
  uint16_t avail = 0;
  while (!in.done()) {
    uint8_t op = in.u8();
    avail = uint16_t((op & 0x80) ? in.le(2) : avail + (op & 0x1f));
    FUZZ_CHECK(mem.write_obj<uint16_t>(GuestAddress(base + 0x400 + 2), avail));
    for (int pops = 0; pops < 64; ++pops) {
      bool was_broken = q.broken();
      auto r = q.pop(chain);
      if (was_broken) FUZZ_CHECK(r == Virtqueue::Pop::Broken);
      if (r != Virtqueue::Pop::Chain) break;
      ++handed;
      FUZZ_CHECK(chain.head < n);
      FUZZ_CHECK(chain.readable <= chain.descs.size());
      FUZZ_CHECK(chain.descs.size() <= n + Virtqueue::kMaxIndirect);
      FUZZ_CHECK(chain.readable_bytes + chain.writable_bytes <= UINT32_MAX);
      for (size_t i = 0; i < chain.descs.size(); ++i) {
        const Descriptor& d = chain.descs[i];
        FUZZ_CHECK(mem.contains(d.addr, d.len));
        FUZZ_CHECK(d.writable == (i >= chain.readable));
      }
      if (op & 0x40) {
        q.add_used(chain.head, uint32_t(chain.writable_bytes));
        ++returned;
      }
    }
    (void)q.needs_interrupt();
  }
  // Refused chains (with a valid head) are returned with length 0 as well.
  const QueueStats& s = q.stats();
  uint64_t refused_returned = s.total_faults() - s.fault(QueueFault::HeadOutOfRange) - s.fault(QueueFault::AvailJump);
  FUZZ_CHECK(s.chains.load() == handed);
  uint16_t used_idx = *mem.read_obj<uint16_t>(GuestAddress(base + 0x800 + 2));
  FUZZ_CHECK(used_idx == uint16_t(returned + refused_returned));
  return 0;
}
