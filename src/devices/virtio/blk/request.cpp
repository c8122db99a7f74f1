#include "devices/virtio/blk/request.h"

#include <linux/virtio_blk.h>

#include <algorithm>
#include <array>
#include <cstring>

namespace evmm::virtio {

namespace {

constexpr uint64_t kHeaderBytes = sizeof(virtio_blk_outhdr);
static_assert(kHeaderBytes == 16 && sizeof(virtio_blk_discard_write_zeroes) == 16);

// The pieces of bytes [off, off+len) of the stream that descs[first, last) make, appended to out.
void ranges_of(const DescriptorChain& chain, size_t first, size_t last, uint64_t off, uint64_t len,
               std::vector<GuestRange>& out) {
  for (size_t i = first; i < last && len > 0; ++i) {
    const Descriptor& d = chain.descs[i];
    if (off >= d.len) {
      off -= d.len;
      continue;
    }
    uint32_t n = uint32_t(std::min<uint64_t>(d.len - off, len));
    out.push_back({d.addr + off, n});
    len -= n;
    off = 0;
  }
}

// Copies bytes [off, off+buf.size()) of the readable stream; false if it is shorter.
bool read_stream(const DescriptorChain& chain, const GuestMemory& mem, uint64_t off, std::span<uint8_t> buf) {
  std::vector<GuestRange> pieces;
  ranges_of(chain, 0, chain.readable, off, buf.size(), pieces);
  size_t at = 0;
  for (const GuestRange& p : pieces) {
    if (!mem.read(p.addr, buf.subspan(at, p.len))) return false;
    at += p.len;
  }
  return at == buf.size();
}

// sector + count must stay within the capacity without wrapping.
bool in_range(uint64_t sector, uint64_t count, uint64_t capacity) {
  return sector <= capacity && count <= capacity - sector;
}

void refuse(BlkRequest& out, BlkFault f, uint8_t answer) {
  out.fault = f;
  out.answer = answer;
}

void parse_ranges(const DescriptorChain& chain, const GuestMemory& mem, const BlkLimits& limits, BlkRequest& out) {
  const bool discard = out.op == BlkOp::Discard;
  if (limits.readonly) return refuse(out, BlkFault::ReadOnly, VIRTIO_BLK_S_IOERR);
  if (!(discard ? limits.discard : limits.write_zeroes)) return refuse(out, BlkFault::NotNegotiated, VIRTIO_BLK_S_UNSUPP);
  if (chain.writable_bytes != 1) return refuse(out, BlkFault::WrongDirection, VIRTIO_BLK_S_IOERR);
  const uint64_t bytes = chain.readable_bytes - kHeaderBytes;
  // §5.2.6.1: a whole number of ranges, at least one.
  if (bytes == 0 || bytes % sizeof(virtio_blk_discard_write_zeroes)) return refuse(out, BlkFault::Unaligned, VIRTIO_BLK_S_IOERR);
  const uint64_t n = bytes / sizeof(virtio_blk_discard_write_zeroes);
  if (n > (discard ? limits.max_discard_seg : limits.max_write_zeroes_seg))
    return refuse(out, BlkFault::TooManySegments, VIRTIO_BLK_S_IOERR);
  const uint32_t max_sectors = discard ? limits.max_discard_sectors : limits.max_write_zeroes_sectors;
  for (uint64_t i = 0; i < n; ++i) {
    virtio_blk_discard_write_zeroes r;
    // SAFETY: r is a trivially copyable local of 16 bytes.
    if (!read_stream(chain, mem, kHeaderBytes + i * sizeof r, std::span(reinterpret_cast<uint8_t*>(&r), sizeof r)))
      return refuse(out, BlkFault::ShortHeader, VIRTIO_BLK_S_IOERR);
    const uint32_t flags = r.flags;
    // §5.2.6.2: unknown flags, and UNMAP on a discard, are UNSUPP.
    if ((flags & ~uint32_t(VIRTIO_BLK_WRITE_ZEROES_FLAG_UNMAP)) || (discard && flags))
      return refuse(out, BlkFault::BadSegmentFlags, VIRTIO_BLK_S_UNSUPP);
    if (r.num_sectors > max_sectors) return refuse(out, BlkFault::TooManySectors, VIRTIO_BLK_S_IOERR);
    if (!in_range(r.sector, r.num_sectors, limits.capacity)) return refuse(out, BlkFault::OutOfRange, VIRTIO_BLK_S_IOERR);
    out.ranges.push_back({r.sector, r.num_sectors, (flags & VIRTIO_BLK_WRITE_ZEROES_FLAG_UNMAP) != 0});
  }
}

}  // namespace

std::string_view to_string(BlkFault f) {
  switch (f) {
    case BlkFault::NoStatus: return "no status byte";
    case BlkFault::ShortHeader: return "short header";
    case BlkFault::WrongDirection: return "data in the wrong direction";
    case BlkFault::Unaligned: return "unaligned data length";
    case BlkFault::OutOfRange: return "sectors beyond the capacity";
    case BlkFault::TooManySegments: return "too many segments";
    case BlkFault::TooManySectors: return "range larger than the limit";
    case BlkFault::BadSegmentFlags: return "bad range flags";
    case BlkFault::ReadOnly: return "write to a read-only disk";
    case BlkFault::NotNegotiated: return "feature not negotiated";
    case BlkFault::Unsupported: return "unsupported request type";
  }
  return "unknown";
}

void parse_request(const DescriptorChain& chain, const GuestMemory& mem, const BlkLimits& limits, BlkRequest& out) {
  out.op = BlkOp::Other;
  out.type = 0;
  out.sector = 0;
  out.data.clear();
  out.data_len = 0;
  out.ranges.clear();
  out.status.reset();
  out.fault.reset();
  out.answer = VIRTIO_BLK_S_OK;

  // The status is the last writable byte (§5.2.6): the last writable descriptor that has any.
  for (size_t i = chain.descs.size(); i > chain.readable; --i) {
    const Descriptor& d = chain.descs[i - 1];
    if (d.len > 0) {
      out.status = d.addr + (d.len - 1);
      break;
    }
  }
  if (!out.status) return refuse(out, BlkFault::NoStatus, VIRTIO_BLK_S_IOERR);

  std::array<uint8_t, kHeaderBytes> raw;
  if (chain.readable_bytes < kHeaderBytes || !read_stream(chain, mem, 0, raw))
    return refuse(out, BlkFault::ShortHeader, VIRTIO_BLK_S_IOERR);
  virtio_blk_outhdr hdr;
  std::memcpy(&hdr, raw.data(), sizeof hdr);
  out.type = hdr.type;
  out.sector = hdr.sector;
  const uint64_t readable_data = chain.readable_bytes - kHeaderBytes;
  const uint64_t writable_data = chain.writable_bytes - 1;

  switch (hdr.type) {
    case VIRTIO_BLK_T_IN:
    case VIRTIO_BLK_T_OUT: {
      const bool in = hdr.type == VIRTIO_BLK_T_IN;
      out.op = in ? BlkOp::In : BlkOp::Out;
      if (in ? readable_data != 0 : writable_data != 0) return refuse(out, BlkFault::WrongDirection, VIRTIO_BLK_S_IOERR);
      if (!in && limits.readonly) return refuse(out, BlkFault::ReadOnly, VIRTIO_BLK_S_IOERR);
      out.data_len = in ? writable_data : readable_data;
      if (in) ranges_of(chain, chain.readable, chain.descs.size(), 0, writable_data, out.data);
      else ranges_of(chain, 0, chain.readable, kHeaderBytes, readable_data, out.data);
      // §5.2.6.1: IN and OUT data is a multiple of 512 bytes.
      if (out.data_len % kSectorSize) return refuse(out, BlkFault::Unaligned, VIRTIO_BLK_S_IOERR);
      if (out.data.size() > limits.seg_max) return refuse(out, BlkFault::TooManySegments, VIRTIO_BLK_S_IOERR);
      if (!in_range(out.sector, out.data_len / kSectorSize, limits.capacity))
        return refuse(out, BlkFault::OutOfRange, VIRTIO_BLK_S_IOERR);
      return;
    }
    case VIRTIO_BLK_T_FLUSH:
      // §5.2.6.1 asks the driver for sector 0 and no data; neither changes what a flush does.
      out.op = BlkOp::Flush;
      return;
    case VIRTIO_BLK_T_GET_ID:
      out.op = BlkOp::GetId;
      if (readable_data != 0 || writable_data == 0) return refuse(out, BlkFault::WrongDirection, VIRTIO_BLK_S_IOERR);
      out.data_len = std::min<uint64_t>(writable_data, kBlkIdBytes);
      ranges_of(chain, chain.readable, chain.descs.size(), 0, out.data_len, out.data);
      return;
    case VIRTIO_BLK_T_DISCARD:
    case VIRTIO_BLK_T_WRITE_ZEROES:
      out.op = hdr.type == VIRTIO_BLK_T_DISCARD ? BlkOp::Discard : BlkOp::WriteZeroes;
      return parse_ranges(chain, mem, limits, out);
    default:
      return refuse(out, BlkFault::Unsupported, VIRTIO_BLK_S_UNSUPP);
  }
}

}  // namespace evmm::virtio
