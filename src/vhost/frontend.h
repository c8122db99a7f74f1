// The frontend side of vhost-user: evmm driving a device that runs in another process (QEMU's
// qemu-storage-daemon, virtiofsd, or `evmm device`). It speaks the control path only: features,
// the memory table, rings, config. The data path never passes through it: the guest's kicks go to
// the kick eventfds given here and the backend's calls come back on the call eventfds.
//
// The backend is not trusted. Every reply is checked whole by parse_reply before anything uses it,
// with one errno per mistake:
//   EPROTO    a version other than 1, or no reply bit
//   EBADMSG   a reply to another request, or fds with a reply
//   EMSGSIZE  a payload whose size is not what the request's reply has
//   EREMOTEIO the backend nacked a request (REPLY_ACK) or offered less than evmm needs
// and a backend that stops answering or goes away is ETIMEDOUT or ECONNRESET. After any of these
// the connection is out of step and broken() is true; the caller reports DEVICE_NEEDS_RESET to its
// guest and evmm runs on.
#pragma once

#include <cstdint>
#include <memory>
#include <span>
#include <string>
#include <vector>

#include "base/fd.h"
#include "base/result.h"
#include "vhost/vhost_user.h"

namespace evmm::vhost {

// Checks a reply to `expected` whose payload must be `size` bytes (0: an ack is 8, a GET_CONFIG reply
// is 12 + the size asked for; the caller says which).
Result<void> parse_reply(const Header& h, std::span<const uint8_t> payload, size_t nfds, Request expected, size_t size);

class Frontend {
 public:
  // One region of guest memory as the backend maps it: guest address, size, the fd and offset
  // behind it, and this process's address of it (ring addresses are given in these).
  struct Region {
    uint64_t guest_addr;
    uint64_t size;
    uint64_t user_addr;
    int fd;
    uint64_t fd_offset;
  };
  struct Ring {
    uint16_t size;
    uint64_t desc, avail, used;  // this process's addresses (inside a Region)
    uint16_t next_avail;         // where the backend starts (SET_VRING_BASE)
    int kick, call;              // eventfds
    uint64_t log_used;           // the used ring's guest address: where a dirty log marks its writes
  };

  // Connects to a backend listening on path; every later reply must come within timeout_ms.
  static Result<std::unique_ptr<Frontend>> connect(const std::string& path, int timeout_ms = 5000);
  // The same on a connected stream socket.
  static Result<std::unique_ptr<Frontend>> over(UniqueFd sock, int timeout_ms = 5000);

  // SET_OWNER, GET_FEATURES, SET_FEATURES (VERSION_1, PROTOCOL_FEATURES and what of `wanted` the
  // backend offers), then the protocol features evmm uses (REPLY_ACK, MQ, CONFIG) where offered.
  // EREMOTEIO when the backend lacks VERSION_1 or PROTOCOL_FEATURES.
  Result<void> negotiate(uint64_t wanted);
  uint64_t backend_features() const { return backend_features_; }
  uint64_t acked_features() const { return acked_features_; }
  uint64_t protocol_features() const { return protocol_; }

  // SET_FEATURES again with what the guest's driver accepted (PROTOCOL_FEATURES is kept): at the
  // device's activation, before the memory table and rings. EINVAL for a feature never offered.
  Result<void> set_features(uint64_t features);
  Result<uint64_t> queue_num();  // GET_QUEUE_NUM (MQ); 1 without it

  // Dirty logging (LOG_SHMFD): the backend maps size bytes of fd as vhost's dirty log
  // (memory/page_log.h) and, while logging is on (VHOST_F_LOG_ALL), marks there every guest page
  // it writes. EOPNOTSUPP when the backend offers either feature not.
  bool can_log() const {
    return (protocol_ & (1ull << kProtoLogShmfd)) && (backend_features_ & kFeatureLogAll);
  }
  Result<void> set_log_base(int fd, uint64_t size);
  Result<void> set_logging(bool on);  // SET_FEATURES with or without LOG_ALL
  Result<std::vector<uint8_t>> get_config(uint32_t offset, uint32_t size);
  Result<void> set_mem_table(std::span<const Region> regions);
  // SET_VRING_NUM, _ADDR (with VHOST_VRING_F_LOG and log_used, so that a backend that logs knows
  // where the used ring is in guest terms), _BASE, _KICK, _CALL, then SET_VRING_ENABLE 1.
  Result<void> start_ring(uint32_t index, const Ring& ring);
  // GET_VRING_BASE: the backend stops the ring and says where it would have gone on.
  Result<uint16_t> stop_ring(uint32_t index);

  bool broken() const { return broken_; }
  // The owner saw the connection end (its event loop watches fd()): nothing more is sent.
  void mark_broken() { broken_ = true; }
  int fd() const { return sock_.get(); }
  uint64_t bad_replies() const { return bad_replies_; }

 private:
  Frontend(UniqueFd sock) : sock_(std::move(sock)) {}
  // Sends a request; when it wants an answer (or REPLY_ACK applies) reads and checks the reply.
  Result<void> send(Request r, std::span<const uint8_t> payload, std::span<const int> fds = {}, bool ack = true);
  Result<std::vector<uint8_t>> call(Request r, std::span<const uint8_t> payload, size_t reply_size);
  // or_empty: an empty payload is accepted as well as one of reply_size bytes.
  Result<std::vector<uint8_t>> receive(Request r, size_t reply_size, bool or_empty = false);
  template <typename T>
  Result<T> fail(Result<T> r) {
    if (!r) broken_ = true, ++bad_replies_;
    return r;
  }

  UniqueFd sock_;
  uint64_t backend_features_ = 0, acked_features_ = 0, protocol_ = 0;
  bool broken_ = false;
  uint64_t bad_replies_ = 0;
};

}  // namespace evmm::vhost
