// The messages an AddressSpace and the processes attached to it exchange over a SOCK_SEQPACKET Unix
// socket: the region table with one fd per region (SCM_RIGHTS), a region added or removed later, and
// the acknowledgement an attached process sends once it has applied a change.
//
// Every message is one datagram: a header, then `count` region entries, all little-endian, and
// exactly as many fds as the type carries (Table: one per region, then the dirty log's; Add: 1;
// Remove and Ack: none). The dirty log is one shared file in which each region has a bitmap, one
// bit per 4 KiB page, at its entry's log_offset: every process that writes guest memory through
// the space sets the bits there, so the exporter sees the attached processes' writes too. The parser
// takes the bytes and the number of fds that came with them and checks everything before anything
// is mapped; each mistake has its own errno so a peer's bug is told apart from a truncated message:
//   EPROTO    bad magic, version, type, or reserved bits set
//   EMSGSIZE  the length does not match count, or count is over kMaxRegions
//   EBADMSG   fds that do not match what the type carries
//   EINVAL    an entry that is empty, not page-aligned (offsets included), or wraps
//   EEXIST    two entries that overlap, in guest space or in the dirty log
#pragma once

#include <cstddef>
#include <cstdint>
#include <span>
#include <vector>

#include "base/fd.h"
#include "base/result.h"
#include "memory/guest_address.h"

namespace evmm::wire {

inline constexpr uint32_t kMagic = 0x53415645;  // "EVAS"
inline constexpr uint16_t kVersion = 1;
// As many regions as vhost-user's GET_MAX_MEM_SLOTS offers at most (QEMU's limit too).
inline constexpr uint32_t kMaxRegions = 509;
inline constexpr uint64_t kPageSize = 4096;

enum class MsgType : uint16_t { Table = 1, Add = 2, Remove = 3, Ack = 4 };

struct Header {
  uint32_t magic;
  uint16_t version;
  uint16_t type;
  uint32_t count;
  uint32_t reserved;
  uint64_t generation;  // the sender's snapshot generation after this change (Ack: the one applied)
};
static_assert(sizeof(Header) == 24);

struct Entry {
  uint64_t start;      // guest-physical
  uint64_t size;       // bytes
  uint64_t fd_offset;   // where the region starts in its fd
  uint64_t log_offset;  // where the region's dirty bitmap starts in the log fd
};
static_assert(sizeof(Entry) == 32);

struct RegionDesc {
  GuestAddress start;
  uint64_t size;
  uint64_t fd_offset;
  uint64_t log_offset = 0;
  bool operator==(const RegionDesc&) const = default;
};

struct Message {
  MsgType type;
  uint64_t generation;
  std::vector<RegionDesc> regions;  // sorted by start
};

// Bytes of a region's bitmap in the log: whole pages, so each bitmap maps on its own.
inline uint64_t log_bytes(uint64_t region_size) {
  uint64_t bits = region_size / kPageSize;
  return (bits + 8 * kPageSize - 1) / (8 * kPageSize) * kPageSize;
}

inline constexpr size_t kMaxMessageBytes = sizeof(Header) + kMaxRegions * sizeof(Entry);

// Encodes a message (no fds: those travel beside it).
std::vector<uint8_t> encode(const Message& m);
// Checks and decodes one datagram that arrived with nfds fds.
Result<Message> parse(std::span<const uint8_t> bytes, size_t nfds);
// How many fds a message of this type and count carries.
size_t fds_for(MsgType type, size_t count);

// One datagram and its fds on a SOCK_SEQPACKET socket. send_message sends fds[i] for regions[i]
// (and, for a Table, the log fd last).
Result<void> send_message(int sock, const Message& m, std::span<const int> fds);
struct Received {
  Message msg;
  std::vector<UniqueFd> fds;  // as fds_for(): one per region, then the log's for a Table
};
// Waits up to timeout_ms (-1: forever). ECONNRESET when the peer has closed; ETIMEDOUT; EMSGSIZE for
// a datagram or fd list that did not fit (the fds that came are closed); otherwise parse()'s errors.
Result<Received> receive_message(int sock, int timeout_ms);

}  // namespace evmm::wire
