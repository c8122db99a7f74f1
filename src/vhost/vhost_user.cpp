#include "vhost/vhost_user.h"

#include <sys/socket.h>

#include <cstring>

namespace evmm::vhost {

std::string_view to_string(Request r) {
  switch (r) {
    case Request::GetFeatures: return "GET_FEATURES";
    case Request::SetFeatures: return "SET_FEATURES";
    case Request::SetOwner: return "SET_OWNER";
    case Request::ResetOwner: return "RESET_OWNER";
    case Request::SetMemTable: return "SET_MEM_TABLE";
    case Request::SetLogBase: return "SET_LOG_BASE";
    case Request::SetLogFd: return "SET_LOG_FD";
    case Request::SetVringNum: return "SET_VRING_NUM";
    case Request::SetVringAddr: return "SET_VRING_ADDR";
    case Request::SetVringBase: return "SET_VRING_BASE";
    case Request::GetVringBase: return "GET_VRING_BASE";
    case Request::SetVringKick: return "SET_VRING_KICK";
    case Request::SetVringCall: return "SET_VRING_CALL";
    case Request::SetVringErr: return "SET_VRING_ERR";
    case Request::GetProtocolFeatures: return "GET_PROTOCOL_FEATURES";
    case Request::SetProtocolFeatures: return "SET_PROTOCOL_FEATURES";
    case Request::GetQueueNum: return "GET_QUEUE_NUM";
    case Request::SetVringEnable: return "SET_VRING_ENABLE";
    case Request::SetBackendReqFd: return "SET_BACKEND_REQ_FD";
    case Request::GetConfig: return "GET_CONFIG";
    case Request::SetConfig: return "SET_CONFIG";
    case Request::ResetDevice: return "RESET_DEVICE";
    case Request::GetMaxMemSlots: return "GET_MAX_MEM_SLOTS";
    case Request::AddMemReg: return "ADD_MEM_REG";
    case Request::RemMemReg: return "REM_MEM_REG";
  }
  return "unknown";
}

namespace {

// The payload shape of each request, and how many fds it carries.
enum class Shape { None, U64, State, Addr, VringFd, MemTable, MemReg, Config, Log };

struct Rule {
  Shape shape;
  size_t fds_min, fds_max;
};

bool rule_for(uint32_t request, Rule& out) {
  switch (static_cast<Request>(request)) {
    case Request::GetFeatures:
    case Request::SetOwner:
    case Request::ResetOwner:
    case Request::GetProtocolFeatures:
    case Request::GetQueueNum:
    case Request::ResetDevice:
    case Request::GetMaxMemSlots: out = {Shape::None, 0, 0}; return true;
    case Request::SetFeatures:
    case Request::SetProtocolFeatures: out = {Shape::U64, 0, 0}; return true;
    case Request::SetMemTable: out = {Shape::MemTable, 0, kMaxMemTableRegions}; return true;
    case Request::SetVringNum:
    case Request::SetVringBase:
    case Request::GetVringBase:
    case Request::SetVringEnable: out = {Shape::State, 0, 0}; return true;
    case Request::SetVringAddr: out = {Shape::Addr, 0, 0}; return true;
    case Request::SetVringKick:
    case Request::SetVringCall:
    case Request::SetVringErr: out = {Shape::VringFd, 0, 1}; return true;
    case Request::SetBackendReqFd: out = {Shape::None, 1, 1}; return true;
    case Request::GetConfig:
    case Request::SetConfig: out = {Shape::Config, 0, 0}; return true;
    case Request::AddMemReg: out = {Shape::MemReg, 1, 1}; return true;
    case Request::RemMemReg: out = {Shape::MemReg, 0, 1}; return true;
    case Request::SetLogBase: out = {Shape::Log, 1, 1}; return true;  // LOG_SHMFD: the log's fd
    case Request::SetLogFd: return false;  // the kernel vhost's eventfd for log writes: not used by vhost-user frontends
  }
  return false;
}

template <typename T>
T load(std::span<const uint8_t> p, size_t off) {
  T v;
  std::memcpy(&v, p.data() + off, sizeof v);
  return v;
}

Result<void> check_region(const MemRegion& r, size_t i) {
  uint64_t end;
  if (!r.size || __builtin_add_overflow(r.guest_addr, r.size, &end) || __builtin_add_overflow(r.user_addr, r.size, &end) ||
      __builtin_add_overflow(r.mmap_offset, r.size, &end))
    return make_error(EINVAL, "vhost-user: memory region {} ({:#x}+{:#x}) is empty or wraps", i, r.guest_addr, r.size);
  return {};
}

}  // namespace

Result<Message> parse_message(const Header& h, std::span<const uint8_t> p, std::vector<UniqueFd> fds) {
  if ((h.flags & kFlagVersionMask) != kVersion)
    return make_error(EPROTO, "vhost-user: message version {}, expected {}", h.flags & kFlagVersionMask, kVersion);
  if (h.flags & kFlagReply) return make_error(EPROTO, "vhost-user: request {} has the reply flag", h.request);
  Rule rule;
  if (!rule_for(h.request, rule)) return make_error(ENOSYS, "vhost-user: request {} is not implemented", h.request);
  const auto req = static_cast<Request>(h.request);
  if (h.size != p.size()) return make_error(EMSGSIZE, "vhost-user: {}: header says {} payload bytes, {} came", to_string(req), h.size, p.size());
  if (fds.size() < rule.fds_min || fds.size() > rule.fds_max)
    return make_error(EBADMSG, "vhost-user: {} came with {} fds", to_string(req), fds.size());

  auto size_is = [&](size_t n) -> Result<void> {
    if (p.size() != n) return make_error(EMSGSIZE, "vhost-user: {} payload of {} bytes, expected {}", to_string(req), p.size(), n);
    return {};
  };
  Message m{req, h.flags, {}, {}};
  switch (rule.shape) {
    case Shape::None:
      // QEMU sends an 8-byte zero with some of these (GET_VRING_BASE's siblings); accept none or that.
      if (!p.empty()) TRY(size_is(8));
      break;
    case Shape::U64: TRY(size_is(8)); m.payload = load<uint64_t>(p, 0); break;
    case Shape::State: {
      TRY(size_is(8));
      VringState s{load<uint32_t>(p, 0), load<uint32_t>(p, 4)};
      if (s.index >= kMaxQueues) return make_error(EINVAL, "vhost-user: {} for ring {}", to_string(req), s.index);
      m.payload = s;
      break;
    }
    case Shape::Addr: {
      TRY(size_is(40));
      VringAddr a{load<uint32_t>(p, 0), load<uint32_t>(p, 4), load<uint64_t>(p, 8), load<uint64_t>(p, 16),
                  load<uint64_t>(p, 24), load<uint64_t>(p, 32)};
      if (a.index >= kMaxQueues) return make_error(EINVAL, "vhost-user: {} for ring {}", to_string(req), a.index);
      m.payload = a;
      break;
    }
    case Shape::VringFd: {
      TRY(size_is(8));
      const uint64_t v = load<uint64_t>(p, 0);
      VringFd f{uint32_t(v & kVringIndexMask), !(v & kVringNoFd)};
      if (v & ~(kVringIndexMask | kVringNoFd)) return make_error(EINVAL, "vhost-user: {} value {:#x}", to_string(req), v);
      if (f.index >= kMaxQueues) return make_error(EINVAL, "vhost-user: {} for ring {}", to_string(req), f.index);
      if (fds.size() != (f.has_fd ? 1u : 0u))
        return make_error(EBADMSG, "vhost-user: {} {} an fd but came with {}", to_string(req), f.has_fd ? "needs" : "says no fd",
                          fds.size());
      m.payload = f;
      break;
    }
    case Shape::MemTable: {
      if (p.size() < 8) TRY(size_is(8));
      const uint32_t n = load<uint32_t>(p, 0);
      if (n == 0 || n > kMaxMemTableRegions)
        return make_error(EMSGSIZE, "vhost-user: SET_MEM_TABLE with {} regions (1 to {})", n, kMaxMemTableRegions);
      // QEMU sends the fixed-size table (8 entries) whatever n is; anything from n entries up to 8.
      if (p.size() < 8 + 32ull * n || p.size() > 8 + 32ull * kMaxMemTableRegions || (p.size() - 8) % 32)
        return make_error(EMSGSIZE, "vhost-user: SET_MEM_TABLE of {} bytes for {} regions", p.size(), n);
      if (fds.size() != n) return make_error(EBADMSG, "vhost-user: SET_MEM_TABLE with {} regions came with {} fds", n, fds.size());
      std::vector<MemRegion> regions;
      for (uint32_t i = 0; i < n; ++i) {
        MemRegion r{load<uint64_t>(p, 8 + 32 * i), load<uint64_t>(p, 16 + 32 * i), load<uint64_t>(p, 24 + 32 * i),
                    load<uint64_t>(p, 32 + 32 * i)};
        TRY(check_region(r, i));
        regions.push_back(r);
      }
      m.payload = std::move(regions);
      break;
    }
    case Shape::MemReg: {
      TRY(size_is(40));
      MemRegion r{load<uint64_t>(p, 8), load<uint64_t>(p, 16), load<uint64_t>(p, 24), load<uint64_t>(p, 32)};
      TRY(check_region(r, 0));
      m.payload = r;
      break;
    }
    case Shape::Config: {
      if (p.size() < 12) TRY(size_is(12));
      ConfigAccess c{load<uint32_t>(p, 0), load<uint32_t>(p, 4), load<uint32_t>(p, 8), {}};
      if (c.size > kMaxConfig || c.offset > kMaxConfig || c.offset + c.size > kMaxConfig)
        return make_error(EINVAL, "vhost-user: {} of {} bytes at {}", to_string(req), c.size, c.offset);
      TRY(size_is(12 + size_t(c.size)));
      c.data.assign(p.begin() + 12, p.end());
      m.payload = std::move(c);
      break;
    }
    case Shape::Log: {
      TRY(size_is(16));
      LogArea a{load<uint64_t>(p, 0), load<uint64_t>(p, 8)};
      uint64_t end;
      if (a.size == 0 || __builtin_add_overflow(a.offset, a.size, &end))
        return make_error(EINVAL, "vhost-user: SET_LOG_BASE of {} bytes at {:#x}", a.size, a.offset);
      m.payload = a;
      break;
    }
  }
  m.fds = std::move(fds);
  return m;
}

namespace {

// Reads exactly n bytes (any fds that come with them appended to fds). ECONNRESET on end of stream.
Result<void> read_full(int sock, uint8_t* buf, size_t n, std::vector<UniqueFd>& fds, bool started) {
  size_t got = 0;
  while (got < n) {
    iovec iov{buf + got, n - got};
    alignas(cmsghdr) uint8_t control[CMSG_SPACE(kMaxMemTableRegions * sizeof(int))];
    msghdr msg{};
    msg.msg_iov = &iov;
    msg.msg_iovlen = 1;
    msg.msg_control = control;
    msg.msg_controllen = sizeof control;
    ssize_t r = ::recvmsg(sock, &msg, MSG_CMSG_CLOEXEC);
    if (r < 0 && errno == EINTR) continue;
    if (r < 0) return errno_error("vhost-user: receive");
    for (cmsghdr* c = CMSG_FIRSTHDR(&msg); c; c = CMSG_NXTHDR(&msg, c)) {
      if (c->cmsg_level != SOL_SOCKET || c->cmsg_type != SCM_RIGHTS) continue;
      for (size_t i = 0; i < (c->cmsg_len - CMSG_LEN(0)) / sizeof(int); ++i) {
        int fd;
        std::memcpy(&fd, CMSG_DATA(c) + i * sizeof(int), sizeof fd);
        fds.emplace_back(fd);
      }
    }
    if (msg.msg_flags & MSG_CTRUNC) return make_error(EBADMSG, "vhost-user: more than {} fds with one message", kMaxMemTableRegions);
    if (r == 0)
      return make_error(ECONNRESET, (started || got) ? "vhost-user: the peer closed the connection mid-message"
                                                    : "vhost-user: the peer closed the connection");
    got += size_t(r);
  }
  return {};
}

}  // namespace

Result<Frame> read_frame(int sock) {
  Frame f;
  uint8_t hb[kHeaderSize];
  TRY(read_full(sock, hb, sizeof hb, f.fds, false));
  std::memcpy(&f.header, hb, sizeof f.header);
  if (f.header.size > kMaxPayload)
    return make_error(EMSGSIZE, "vhost-user: a payload of {} bytes (at most {})", f.header.size, kMaxPayload);
  f.payload.resize(f.header.size);
  if (f.header.size) TRY(read_full(sock, f.payload.data(), f.payload.size(), f.fds, true));
  return f;
}

Result<void> send_message(int sock, const Header& h, std::span<const uint8_t> payload, std::span<const int> fds) {
  if (fds.size() > kMaxMemTableRegions) return make_error(EINVAL, "vhost-user: {} fds with one message", fds.size());
  std::vector<uint8_t> out(reinterpret_cast<const uint8_t*>(&h), reinterpret_cast<const uint8_t*>(&h) + kHeaderSize);
  out.insert(out.end(), payload.begin(), payload.end());
  alignas(cmsghdr) uint8_t control[CMSG_SPACE(kMaxMemTableRegions * sizeof(int))];
  for (size_t sent = 0; sent < out.size();) {
    iovec iov{out.data() + sent, out.size() - sent};
    msghdr msg{};
    msg.msg_iov = &iov;
    msg.msg_iovlen = 1;
    if (sent == 0 && !fds.empty()) {  // the fds go with the first byte
      msg.msg_control = control;
      msg.msg_controllen = CMSG_SPACE(fds.size() * sizeof(int));
      cmsghdr* c = CMSG_FIRSTHDR(&msg);
      c->cmsg_level = SOL_SOCKET;
      c->cmsg_type = SCM_RIGHTS;
      c->cmsg_len = CMSG_LEN(fds.size() * sizeof(int));
      std::memcpy(CMSG_DATA(c), fds.data(), fds.size() * sizeof(int));
    }
    ssize_t n = ::sendmsg(sock, &msg, MSG_NOSIGNAL);
    if (n < 0 && errno == EINTR) continue;
    if (n < 0) return errno_error("vhost-user: send {}", to_string(static_cast<Request>(h.request)));
    sent += size_t(n);
  }
  return {};
}

Result<void> send_reply(int sock, Request r, std::span<const uint8_t> payload) {
  return send_message(sock, Header{static_cast<uint32_t>(r), kVersion | kFlagReply, static_cast<uint32_t>(payload.size())},
                      payload, {});
}

}  // namespace evmm::vhost
