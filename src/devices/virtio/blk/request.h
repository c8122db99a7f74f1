// virtio-blk's request parser (virtio 1.2 §5.2.6): a pure function from a checked descriptor chain and
// guest memory to what the device must do, or the status it must answer at once. No I/O, no state:
// the fuzz target (fuzz/targets/virtio_blk_fuzz.cpp) drives it alone.
//
// Rules:
//   - The chain is a byte stream (VERSION_1 implies ANY_LAYOUT, §2.7.4): the first 16 readable bytes
//     are the header wherever the descriptors split them; the last writable byte is the status; the
//     data is what lies between (readable for OUT, DISCARD, WRITE_ZEROES; writable for IN, GET_ID).
//   - Without a writable byte there is nowhere to answer: the chain goes back with length 0.
//   - Every other mistake names the status to answer: IOERR for a malformed or out-of-range request
//     and for any write to a read-only disk (§5.2.6.2), UNSUPP for an unknown type or flag.
//   - Data ranges are guest addresses inside the chain's own checked buffers; nothing here touches
//     memory outside guest RAM, and only the header and discard ranges are read.
#pragma once

#include <cstdint>
#include <optional>
#include <vector>

#include "devices/virtio/blk/metrics.h"
#include "devices/virtio/queue.h"
#include "memory/guest_memory.h"

namespace evmm::virtio {

inline constexpr uint64_t kSectorSize = 512;
inline constexpr uint32_t kBlkIdBytes = 20;  // VIRTIO_BLK_ID_BYTES

// What the device offers and the driver accepted that decides whether a request is well formed.
struct BlkLimits {
  uint64_t capacity = 0;  // sectors
  uint32_t seg_max = 0;   // data descriptors in one IN/OUT request
  uint32_t max_discard_sectors = 0, max_discard_seg = 0;
  uint32_t max_write_zeroes_sectors = 0, max_write_zeroes_seg = 0;
  bool readonly = false;
  bool discard = false;       // VIRTIO_BLK_F_DISCARD negotiated
  bool write_zeroes = false;  // VIRTIO_BLK_F_WRITE_ZEROES negotiated
};

enum class BlkOp : uint8_t { In, Out, Flush, GetId, Discard, WriteZeroes, Other };

struct GuestRange {
  GuestAddress addr;
  uint32_t len;
};

// One discard or write-zeroes range, checked against the capacity and limits.
struct SectorRange {
  uint64_t sector;
  uint32_t sectors;
  bool unmap;
};

struct BlkRequest {
  BlkOp op = BlkOp::Other;
  uint32_t type = 0;  // as the guest wrote it
  uint64_t sector = 0;
  std::vector<GuestRange> data;  // the data buffers, in order
  uint64_t data_len = 0;
  std::vector<SectorRange> ranges;     // DISCARD, WRITE_ZEROES
  std::optional<GuestAddress> status;  // the status byte; none: return the chain with length 0
  std::optional<BlkFault> fault;       // set: answer `answer` without I/O
  uint8_t answer = 0;                  // VIRTIO_BLK_S_* for a fault
};

// Parses chain into out (its vectors' storage is reused).
void parse_request(const DescriptorChain& chain, const GuestMemory& mem, const BlkLimits& limits, BlkRequest& out);

}  // namespace evmm::virtio
