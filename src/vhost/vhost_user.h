// The vhost-user protocol's messages (QEMU's docs/interop/vhost-user.rst): a 12-byte header
// (request, flags, payload size), a payload whose layout the request fixes, and fds beside it
// (SCM_RIGHTS) for the requests that carry them. Little-endian, on a SOCK_STREAM Unix socket.
//
// parse_message() checks one message completely before anything acts on it, and each mistake has
// its own errno, so a frontend's bug is told apart from a truncated message:
//   EPROTO    a version other than 1, or the reply bit on a request
//   ENOSYS    a request this backend does not implement
//   EMSGSIZE  a payload whose size does not fit the request (too short, too long, or a region count
//             over the limit)
//   EBADMSG   fds where the request carries none, or too few or too many where it does
//   EINVAL    a value out of range (a ring index, a region that is empty or wraps, a config access
//             beyond 256 bytes, a log area that is empty or wraps)
#pragma once

#include <algorithm>
#include <cstddef>
#include <cstdint>
#include <cstring>
#include <span>
#include <string_view>
#include <variant>
#include <vector>

#include "base/fd.h"
#include "base/result.h"

namespace evmm::vhost {

enum class Request : uint32_t {
  GetFeatures = 1,
  SetFeatures = 2,
  SetOwner = 3,
  ResetOwner = 4,
  SetMemTable = 5,
  SetLogBase = 6,
  SetLogFd = 7,
  SetVringNum = 8,
  SetVringAddr = 9,
  SetVringBase = 10,
  GetVringBase = 11,
  SetVringKick = 12,
  SetVringCall = 13,
  SetVringErr = 14,
  GetProtocolFeatures = 15,
  SetProtocolFeatures = 16,
  GetQueueNum = 17,
  SetVringEnable = 18,
  SetBackendReqFd = 21,
  GetConfig = 24,
  SetConfig = 25,
  ResetDevice = 34,
  GetMaxMemSlots = 36,
  AddMemReg = 37,
  RemMemReg = 38,
};
std::string_view to_string(Request r);

inline constexpr uint32_t kVersion = 0x1;
inline constexpr uint32_t kFlagVersionMask = 0x3;
inline constexpr uint32_t kFlagReply = 1u << 2;
inline constexpr uint32_t kFlagNeedReply = 1u << 3;

inline constexpr uint64_t kFeatureProtocolFeatures = 1ull << 30;  // VHOST_USER_F_PROTOCOL_FEATURES
inline constexpr uint64_t kFeatureLogAll = 1ull << 26;            // VHOST_F_LOG_ALL: log every write
enum ProtocolFeature : unsigned {
  kProtoMq = 0,
  kProtoLogShmfd = 1,
  kProtoReplyAck = 3,
  kProtoConfig = 9,
  kProtoResetDevice = 13,
  kProtoConfigureMemSlots = 15,
};

inline constexpr size_t kHeaderSize = 12;
inline constexpr uint32_t kMaxMemTableRegions = 8;  // VHOST_MEMORY_BASELINE_NREGIONS
inline constexpr uint32_t kMaxMemSlots = 32;        // what GET_MAX_MEM_SLOTS answers
inline constexpr uint32_t kMaxQueues = 64;
inline constexpr uint32_t kMaxConfig = 256;
// The largest payloads: SET_MEM_TABLE (8 + 8 regions of 32 bytes = 264) and a whole config space
// in GET_CONFIG/SET_CONFIG (12 + 256 = 268).
inline constexpr size_t kMaxPayload = std::max<size_t>(8 + kMaxMemTableRegions * 32, 12 + kMaxConfig);
inline constexpr uint64_t kVringIndexMask = 0xff;
inline constexpr uint64_t kVringNoFd = 1ull << 8;
inline constexpr uint32_t kVringFlagLog = 1u << 0;  // VHOST_VRING_F_LOG: VringAddr::log is the used ring's guest address

// Values laid end to end in host (little-endian) order: how a payload is built.
template <typename... W>
std::vector<uint8_t> pack(W... w) {
  std::vector<uint8_t> b;
  auto put = [&](auto v) {
    const size_t at = b.size();
    b.resize(at + sizeof v);
    std::memcpy(b.data() + at, &v, sizeof v);
  };
  (put(w), ...);
  return b;
}

struct Header {
  uint32_t request;
  uint32_t flags;
  uint32_t size;
};
static_assert(sizeof(Header) == kHeaderSize);

struct MemRegion {
  uint64_t guest_addr;
  uint64_t size;
  uint64_t user_addr;  // the frontend's own address of the region: ring addresses are given in these
  uint64_t mmap_offset;
};
struct VringState {
  uint32_t index;
  uint32_t num;
};
struct VringAddr {
  uint32_t index;
  uint32_t flags;
  uint64_t desc, used, avail, log;  // frontend user addresses
};
struct VringFd {  // SET_VRING_KICK/CALL/ERR
  uint32_t index;
  bool has_fd;
};
struct LogArea {  // SET_LOG_BASE with LOG_SHMFD: the log is size bytes at offset in the fd that came
  uint64_t size, offset;
};
struct ConfigAccess {
  uint32_t offset, size, flags;
  std::vector<uint8_t> data;  // SET_CONFIG: what to write
};
using Payload = std::variant<std::monostate, uint64_t, std::vector<MemRegion>, MemRegion, VringState, VringAddr, VringFd,
                             ConfigAccess, LogArea>;

struct Message {
  Request request;
  uint32_t flags;
  Payload payload;
  std::vector<UniqueFd> fds;
  bool need_reply() const { return flags & kFlagNeedReply; }
};

// Checks a message: its header (the 12 bytes before payload) and payload, with the fds that came.
// The fds are moved into the result on success and closed on failure.
Result<Message> parse_message(const Header& h, std::span<const uint8_t> payload, std::vector<UniqueFd> fds);

// One message as it came off the stream, not yet checked.
struct Frame {
  Header header;
  std::vector<uint8_t> payload;
  std::vector<UniqueFd> fds;
};
// Reads one message from a stream socket: the header, then its payload (with any fds). Every error
// leaves the stream out of step, so the caller drops the connection: ECONNRESET once the frontend
// has closed (mid-message or not, the message says which); EMSGSIZE for a size over kMaxPayload;
// EBADMSG for more fds than one message may carry; the socket's errno otherwise. A frame that was
// read whole goes to parse_message, whose errors concern that message only.
Result<Frame> read_frame(int sock);
// Sends one message with fds (at most kMaxMemTableRegions) beside its first byte.
Result<void> send_message(int sock, const Header& h, std::span<const uint8_t> payload, std::span<const int> fds);
// A reply to request r: header with the reply bit and the payload bytes.
Result<void> send_reply(int sock, Request r, std::span<const uint8_t> payload);

}  // namespace evmm::vhost
