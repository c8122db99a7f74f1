// virtio-blk's request parser (devices/virtio/blk/request.h) over a descriptor chain the input builds,
// as the virtqueue walker would hand it over (buffers inside RAM, readable ones first), on 64 KiB of
// guest memory the input fills.
// Input: a flags byte (bit 0 read-only, bit 1 DISCARD, bit 2 WRITE_ZEROES negotiated), the capacity
// in sectors (2 bytes), seg_max (1 byte), the descriptor count (1 byte, mod 17), then per descriptor
// a flags byte (bit 0 writable), its address and length (2 bytes each, clipped to the memory); the
// rest of the input is the memory's first bytes.
// Invariants from request.h: without a writable byte the answer is NoStatus; otherwise the status
// is the last byte of the last non-empty writable buffer; a refusal answers IOERR or UNSUPP; an
// accepted IN/OUT is whole sectors, within the capacity and seg_max, with data ranges that lie inside
// the chain's buffers of the right direction and add up to its length; no write is accepted on a
// read-only disk; accepted discard and write-zeroes ranges lie within the capacity.
#include <linux/virtio_blk.h>

#include <algorithm>

#include "devices/virtio/blk/request.h"
#include "fuzz_input.h"
#include "fuzz_memory.h"

using namespace evmm;
using namespace evmm::virtio;

namespace {

constexpr uint64_t kMemBytes = 64 * 1024;

bool inside(const DescriptorChain& c, const GuestRange& r, bool writable) {
  for (const Descriptor& d : c.descs)
    if (d.writable == writable && r.addr >= d.addr && r.addr.raw() + r.len <= d.addr.raw() + d.len) return true;
  return false;
}

}  // namespace

extern "C" int LLVMFuzzerInitialize(int*, char***) {
  fuzz_quiet_logs();
  return 0;
}

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  fuzz::Input in(data, size);
  const GuestMemory& mem = fuzz::zeroed_memory<kMemBytes>();
  const uint8_t flags = in.u8();
  BlkLimits limits;
  limits.readonly = flags & 1;
  limits.discard = flags & 2;
  limits.write_zeroes = flags & 4;
  limits.capacity = in.le(2);
  limits.seg_max = in.u8();
  limits.max_discard_sectors = limits.max_write_zeroes_sectors = 256;
  limits.max_discard_seg = limits.max_write_zeroes_seg = 4;

  DescriptorChain chain;
  const unsigned n = in.u8() % 17;
  std::vector<Descriptor> descs;
  for (unsigned i = 0; i < n; ++i) {
    const bool writable = in.u8() & 1;
    const uint64_t addr = in.le(2);
    const uint32_t len = uint32_t(std::min<uint64_t>(in.le(2), kMemBytes - addr));
    descs.push_back({GuestAddress(addr), len, writable});
  }
  // The walker's guarantee: readable buffers first.
  std::stable_partition(descs.begin(), descs.end(), [](const Descriptor& d) { return !d.writable; });
  for (const Descriptor& d : descs) {
    chain.descs.push_back(d);
    if (d.writable) {
      chain.writable_bytes += d.len;
    } else {
      ++chain.readable;
      chain.readable_bytes += d.len;
    }
  }
  auto rest = in.rest();
  FUZZ_CHECK(mem.write(GuestAddress(0), rest.first(std::min<size_t>(rest.size(), kMemBytes))));

  BlkRequest r;
  parse_request(chain, mem, limits, r);

  if (chain.writable_bytes == 0) {
    FUZZ_CHECK(r.fault == BlkFault::NoStatus && !r.status);
    return 0;
  }
  FUZZ_CHECK(r.status);
  const Descriptor* last = nullptr;
  for (const Descriptor& d : chain.descs)
    if (d.writable && d.len > 0) last = &d;
  FUZZ_CHECK(last && *r.status == last->addr + (last->len - 1));
  if (r.fault) {
    FUZZ_CHECK(r.answer == VIRTIO_BLK_S_IOERR || r.answer == VIRTIO_BLK_S_UNSUPP);
    return 0;
  }
  uint64_t total = 0;
  const bool device_writes = r.op == BlkOp::In || r.op == BlkOp::GetId;
  for (const GuestRange& g : r.data) {
    FUZZ_CHECK(inside(chain, g, device_writes));
    total += g.len;
  }
  switch (r.op) {
    case BlkOp::In:
    case BlkOp::Out:
      FUZZ_CHECK(total == r.data_len && r.data_len % kSectorSize == 0);
      FUZZ_CHECK(r.data.size() <= limits.seg_max);
      FUZZ_CHECK(r.sector <= limits.capacity && r.data_len / kSectorSize <= limits.capacity - r.sector);
      FUZZ_CHECK(r.op == BlkOp::In || !limits.readonly);
      break;
    case BlkOp::GetId: FUZZ_CHECK(total == r.data_len && r.data_len >= 1 && r.data_len <= kBlkIdBytes); break;
    case BlkOp::Discard:
    case BlkOp::WriteZeroes:
      FUZZ_CHECK(!limits.readonly && !r.ranges.empty() && r.ranges.size() <= 4);
      for (const SectorRange& s : r.ranges)
        FUZZ_CHECK(s.sector <= limits.capacity && s.sectors <= limits.capacity - s.sector && s.sectors <= 256);
      break;
    case BlkOp::Flush: break;
    case BlkOp::Other: FUZZ_CHECK(false); break;
  }
  return 0;
}
