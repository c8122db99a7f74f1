#include "memory/address_space_wire.h"

#include <poll.h>
#include <sys/socket.h>

#include <algorithm>
#include <cstring>

namespace evmm::wire {

size_t fds_for(MsgType type, size_t count) {
  switch (type) {
    case MsgType::Table: return count + 1;
    case MsgType::Add: return 1;
    case MsgType::Remove:
    case MsgType::Ack: return 0;
  }
  return 0;
}

std::vector<uint8_t> encode(const Message& m) {
  std::vector<uint8_t> out(sizeof(Header) + m.regions.size() * sizeof(Entry));
  Header h{kMagic, kVersion, static_cast<uint16_t>(m.type), static_cast<uint32_t>(m.regions.size()), 0, m.generation};
  std::memcpy(out.data(), &h, sizeof h);
  for (size_t i = 0; i < m.regions.size(); ++i) {
    Entry e{m.regions[i].start.raw(), m.regions[i].size, m.regions[i].fd_offset, m.regions[i].log_offset};
    std::memcpy(out.data() + sizeof h + i * sizeof e, &e, sizeof e);
  }
  return out;
}

Result<Message> parse(std::span<const uint8_t> bytes, size_t nfds) {
  Header h;
  if (bytes.size() < sizeof h)
    return make_error(EMSGSIZE, "address space message: {} bytes, shorter than its {}-byte header", bytes.size(), sizeof h);
  std::memcpy(&h, bytes.data(), sizeof h);
  if (h.magic != kMagic) return make_error(EPROTO, "address space message: bad magic {:#x}", h.magic);
  if (h.version != kVersion) return make_error(EPROTO, "address space message: version {}, expected {}", h.version, kVersion);
  if (h.reserved) return make_error(EPROTO, "address space message: reserved header bits {:#x}", h.reserved);
  auto type = static_cast<MsgType>(h.type);
  size_t want_count;
  switch (type) {
    case MsgType::Table: want_count = h.count; break;
    case MsgType::Add:
    case MsgType::Remove: want_count = 1; break;
    case MsgType::Ack: want_count = 0; break;
    default: return make_error(EPROTO, "address space message: unknown type {}", h.type);
  }
  if (h.count > kMaxRegions)
    return make_error(EMSGSIZE, "address space message: {} regions, more than {}", h.count, kMaxRegions);
  if (h.count != want_count)
    return make_error(EMSGSIZE, "address space message: type {} with {} regions", h.type, h.count);
  if (bytes.size() != sizeof h + size_t(h.count) * sizeof(Entry))
    return make_error(EMSGSIZE, "address space message: {} bytes for {} regions", bytes.size(), h.count);
  if (nfds != fds_for(type, h.count))
    return make_error(EBADMSG, "address space message: type {} came with {} fds, expected {}", h.type, nfds,
                      fds_for(type, h.count));

  Message m{type, h.generation, {}};
  m.regions.reserve(h.count);
  for (uint32_t i = 0; i < h.count; ++i) {
    Entry e;
    std::memcpy(&e, bytes.data() + sizeof h + i * sizeof e, sizeof e);
    if (!e.size || e.size % kPageSize || e.start % kPageSize || e.fd_offset % kPageSize || e.log_offset % kPageSize)
      return make_error(EINVAL,
                        "address space message: region {} ({:#x}+{:#x} at fd offset {:#x}, log offset {:#x}) is empty or "
                        "not page-aligned",
                        i, e.start, e.size, e.fd_offset, e.log_offset);
    uint64_t end;
    if (__builtin_add_overflow(e.start, e.size, &end) || __builtin_add_overflow(e.fd_offset, e.size, &end) ||
        __builtin_add_overflow(e.log_offset, log_bytes(e.size), &end))
      return make_error(EINVAL, "address space message: region {} ({:#x}+{:#x}) wraps", i, e.start, e.size);
    m.regions.push_back({GuestAddress(e.start), e.size, e.fd_offset, e.log_offset});
  }
  // Two bitmaps sharing log bytes would mix two regions' dirty pages.
  std::vector<RegionDesc> by_log = m.regions;
  std::sort(by_log.begin(), by_log.end(), [](auto& a, auto& b) { return a.log_offset < b.log_offset; });
  for (size_t i = 1; i < by_log.size(); ++i)
    if (by_log[i - 1].log_offset + log_bytes(by_log[i - 1].size) > by_log[i].log_offset)
      return make_error(EEXIST, "address space message: the dirty bitmaps of regions at {} and {} overlap", by_log[i - 1].start,
                        by_log[i].start);
  std::sort(m.regions.begin(), m.regions.end(), [](auto& a, auto& b) { return a.start < b.start; });
  for (size_t i = 1; i < m.regions.size(); ++i)
    if (m.regions[i - 1].start.raw() + m.regions[i - 1].size > m.regions[i].start.raw())
      return make_error(EEXIST, "address space message: regions at {} and {} overlap", m.regions[i - 1].start,
                        m.regions[i].start);
  return m;
}

Result<void> send_message(int sock, const Message& m, std::span<const int> fds) {
  if (fds.size() != fds_for(m.type, m.regions.size()))
    return make_error(EINVAL, "address space: {} fds for a message that carries {}", fds.size(), fds_for(m.type, m.regions.size()));
  std::vector<uint8_t> bytes = encode(m);
  iovec iov{bytes.data(), bytes.size()};
  msghdr msg{};
  msg.msg_iov = &iov;
  msg.msg_iovlen = 1;
  std::vector<uint8_t> control;
  if (!fds.empty()) {
    control.resize(CMSG_SPACE(fds.size() * sizeof(int)));
    msg.msg_control = control.data();
    msg.msg_controllen = control.size();
    cmsghdr* c = CMSG_FIRSTHDR(&msg);
    c->cmsg_level = SOL_SOCKET;
    c->cmsg_type = SCM_RIGHTS;
    c->cmsg_len = CMSG_LEN(fds.size() * sizeof(int));
    std::memcpy(CMSG_DATA(c), fds.data(), fds.size() * sizeof(int));
  }
  ssize_t n;
  do n = ::sendmsg(sock, &msg, MSG_NOSIGNAL);
  while (n < 0 && errno == EINTR);
  if (n < 0) return errno_error("address space: send");
  if (size_t(n) != bytes.size()) return make_error(EMSGSIZE, "address space: sent {} of {} bytes", n, bytes.size());
  return {};
}

Result<Received> receive_message(int sock, int timeout_ms) {
  pollfd p{sock, POLLIN, 0};
  int r;
  do r = ::poll(&p, 1, timeout_ms);
  while (r < 0 && errno == EINTR);
  if (r < 0) return errno_error("address space: poll");
  if (r == 0) return make_error(ETIMEDOUT, "address space: no message from the peer in {} ms", timeout_ms);

  // One byte more than the largest message, so that an oversized datagram shows as MSG_TRUNC.
  std::vector<uint8_t> bytes(kMaxMessageBytes + 1);
  std::vector<uint8_t> control(CMSG_SPACE(kMaxRegions * sizeof(int)));
  iovec iov{bytes.data(), bytes.size()};
  msghdr msg{};
  msg.msg_iov = &iov;
  msg.msg_iovlen = 1;
  msg.msg_control = control.data();
  msg.msg_controllen = control.size();
  ssize_t n;
  do n = ::recvmsg(sock, &msg, MSG_CMSG_CLOEXEC);
  while (n < 0 && errno == EINTR);
  if (n < 0) return errno_error("address space: receive");

  Received out;
  for (cmsghdr* c = CMSG_FIRSTHDR(&msg); c; c = CMSG_NXTHDR(&msg, c)) {
    if (c->cmsg_level != SOL_SOCKET || c->cmsg_type != SCM_RIGHTS) continue;
    size_t count = (c->cmsg_len - CMSG_LEN(0)) / sizeof(int);
    for (size_t i = 0; i < count; ++i) {
      int fd;
      std::memcpy(&fd, CMSG_DATA(c) + i * sizeof(int), sizeof fd);
      out.fds.emplace_back(fd);
    }
  }
  if (n == 0) return make_error(ECONNRESET, "address space: the peer closed the connection");
  if (msg.msg_flags & MSG_TRUNC) return make_error(EMSGSIZE, "address space: a message over {} bytes", kMaxMessageBytes);
  if (msg.msg_flags & MSG_CTRUNC) return make_error(EMSGSIZE, "address space: a message with more than {} fds", kMaxRegions);
  out.msg = TRY(parse(std::span(bytes.data(), size_t(n)), out.fds.size()));
  return out;
}

}  // namespace evmm::wire
