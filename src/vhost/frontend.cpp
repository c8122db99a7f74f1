#include "vhost/frontend.h"

#include <sys/socket.h>
#include <sys/un.h>

#include <cstring>

#include "devices/virtio/virtio_abi.h"

namespace evmm::vhost {

namespace {

constexpr uint64_t kVersion1 = 1ull << VIRTIO_F_VERSION_1;
constexpr uint64_t kProtocolWanted =
    (1ull << kProtoMq) | (1ull << kProtoLogShmfd) | (1ull << kProtoReplyAck) | (1ull << kProtoConfig);

uint64_t u64_at(std::span<const uint8_t> p, size_t at) {
  uint64_t v;
  std::memcpy(&v, p.data() + at, sizeof v);
  return v;
}

}  // namespace

Result<void> parse_reply(const Header& h, std::span<const uint8_t> payload, size_t nfds, Request expected, size_t size) {
  if ((h.flags & kFlagVersionMask) != kVersion || !(h.flags & kFlagReply))
    return make_error(EPROTO, "vhost-user: reply flags {:#x} (want version 1 and the reply bit)", h.flags);
  if (h.request != static_cast<uint32_t>(expected))
    return make_error(EBADMSG, "vhost-user: a reply to request {} while waiting for {}", h.request, to_string(expected));
  if (nfds) return make_error(EBADMSG, "vhost-user: {} fds with the reply to {}", nfds, to_string(expected));
  if (h.size != payload.size() || payload.size() != size)
    return make_error(EMSGSIZE, "vhost-user: a {}-byte reply to {} (header says {}), expected {}", payload.size(),
                      to_string(expected), h.size, size);
  return {};
}

Result<std::unique_ptr<Frontend>> Frontend::connect(const std::string& path, int timeout_ms) {
  sockaddr_un addr{};
  addr.sun_family = AF_UNIX;
  if (path.empty() || path.size() >= sizeof addr.sun_path)
    return make_error(EINVAL, "vhost-user: socket path '{}' is empty or longer than {} bytes", path, sizeof addr.sun_path - 1);
  std::memcpy(addr.sun_path, path.data(), path.size());
  UniqueFd sock(::socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0));
  if (sock.get() < 0) return errno_error("vhost-user: socket");
  if (::connect(sock.get(), reinterpret_cast<sockaddr*>(&addr), sizeof addr) != 0)
    return errno_error("vhost-user: connect to {}", path);
  return over(std::move(sock), timeout_ms);
}

Result<std::unique_ptr<Frontend>> Frontend::over(UniqueFd sock, int timeout_ms) {
  // A backend that stops answering must not stop evmm: every receive and send gives up in time.
  timeval tv{timeout_ms / 1000, (timeout_ms % 1000) * 1000};
  if (::setsockopt(sock.get(), SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof tv) != 0 ||
      ::setsockopt(sock.get(), SOL_SOCKET, SO_SNDTIMEO, &tv, sizeof tv) != 0)
    return errno_error("vhost-user: socket timeouts");
  return std::unique_ptr<Frontend>(new Frontend(std::move(sock)));
}

Result<std::vector<uint8_t>> Frontend::receive(Request r, size_t reply_size, bool or_empty) {
  auto f = read_frame(sock_.get());
  if (!f) {
    if (f.error().code() == EAGAIN)
      return fail<std::vector<uint8_t>>(make_error(ETIMEDOUT, "vhost-user: no reply to {} in time", to_string(r)));
    return fail<std::vector<uint8_t>>(tl::unexpected(f.error().wrap(fmt::format("waiting for the reply to {}", to_string(r)))));
  }
  const size_t size = or_empty && f->payload.empty() ? 0 : reply_size;
  TRY(fail(parse_reply(f->header, f->payload, f->fds.size(), r, size)));
  return std::move(f->payload);
}

Result<void> Frontend::send(Request r, std::span<const uint8_t> payload, std::span<const int> fds, bool ack) {
  if (broken_) return make_error(ENOTCONN, "vhost-user: the connection broke earlier; {} not sent", to_string(r));
  ack = ack && (protocol_ & (1ull << kProtoReplyAck));
  Header h{static_cast<uint32_t>(r), kVersion | (ack ? kFlagNeedReply : 0), static_cast<uint32_t>(payload.size())};
  if (auto s = send_message(sock_.get(), h, payload, fds); !s) {
    broken_ = true;
    if (s.error().code() == EPIPE || s.error().code() == ECONNRESET)
      return make_error(ECONNRESET, "vhost-user: the backend went away ({} not sent)", to_string(r));
    if (s.error().code() == EAGAIN) return make_error(ETIMEDOUT, "vhost-user: the backend took no {} in time", to_string(r));
    return tl::unexpected(s.error());
  }
  if (!ack) return {};
  auto reply = TRY(receive(r, 8));
  if (u64_at(reply, 0) != 0) return make_error(EREMOTEIO, "vhost-user: the backend refused {} ({})", to_string(r), u64_at(reply, 0));
  return {};
}

Result<std::vector<uint8_t>> Frontend::call(Request r, std::span<const uint8_t> payload, size_t reply_size) {
  TRY(send(r, payload, {}, false));
  return receive(r, reply_size);
}

Result<void> Frontend::negotiate(uint64_t wanted) {
  TRY(send(Request::SetOwner, {}));
  backend_features_ = u64_at(TRY(call(Request::GetFeatures, {}, 8)), 0);
  if ((backend_features_ & (kVersion1 | kFeatureProtocolFeatures)) != (kVersion1 | kFeatureProtocolFeatures))
    return make_error(EREMOTEIO, "vhost-user: the backend offers features {:#x}, without VERSION_1 or PROTOCOL_FEATURES",
                      backend_features_);
  acked_features_ = backend_features_ & (wanted | kVersion1 | kFeatureProtocolFeatures);
  TRY(send(Request::SetFeatures, pack(acked_features_)));
  const uint64_t offered = u64_at(TRY(call(Request::GetProtocolFeatures, {}, 8)), 0);
  TRY(send(Request::SetProtocolFeatures, pack(offered & kProtocolWanted)));
  protocol_ = offered & kProtocolWanted;  // from here on, requests ask for acks where REPLY_ACK is on
  return {};
}

Result<void> Frontend::set_features(uint64_t features) {
  features |= kFeatureProtocolFeatures;
  if (features & ~backend_features_)
    return make_error(EINVAL, "vhost-user: features {:#x} were not offered", features & ~backend_features_);
  TRY(send(Request::SetFeatures, pack(features)));
  acked_features_ = features;
  return {};
}

Result<void> Frontend::set_log_base(int fd, uint64_t size) {
  if (!can_log()) return make_error(EOPNOTSUPP, "vhost-user: the backend offers no dirty log (LOG_SHMFD and LOG_ALL)");
  const int fds[] = {fd};
  TRY(send(Request::SetLogBase, pack(size, uint64_t{0}), fds, false));
  // The backend answers once the log is mapped: libvhost-user with a u64, others with nothing.
  TRY(receive(Request::SetLogBase, 8, true));
  return {};
}

Result<void> Frontend::set_logging(bool on) {
  if (on && !can_log()) return make_error(EOPNOTSUPP, "vhost-user: the backend offers no LOG_ALL");
  return set_features(on ? acked_features_ | kFeatureLogAll : acked_features_ & ~kFeatureLogAll);
}

Result<uint64_t> Frontend::queue_num() {
  if (!(protocol_ & (1ull << kProtoMq))) return 1;
  return u64_at(TRY(call(Request::GetQueueNum, {}, 8)), 0);
}

Result<std::vector<uint8_t>> Frontend::get_config(uint32_t offset, uint32_t size) {
  if (!(protocol_ & (1ull << kProtoConfig))) return make_error(EOPNOTSUPP, "vhost-user: the backend has no CONFIG");
  if (size > kMaxConfig || offset > kMaxConfig - size)
    return make_error(EINVAL, "vhost-user: config access of {} bytes at {}", size, offset);
  auto req = pack(offset, size, uint32_t{0});
  req.resize(req.size() + size);
  auto reply = TRY(call(Request::GetConfig, req, 12 + size));
  // The reply repeats what was asked; the bytes follow.
  if (std::memcmp(reply.data(), req.data(), 8) != 0)
    return fail<std::vector<uint8_t>>(make_error(EBADMSG, "vhost-user: GET_CONFIG answered another range"));
  return std::vector<uint8_t>(reply.begin() + 12, reply.end());
}

Result<void> Frontend::set_mem_table(std::span<const Region> regions) {
  if (regions.empty() || regions.size() > kMaxMemTableRegions)
    return make_error(EINVAL, "vhost-user: a memory table of {} regions (1 to {})", regions.size(), kMaxMemTableRegions);
  auto p = pack(static_cast<uint32_t>(regions.size()), uint32_t{0});
  std::vector<int> fds;
  for (const auto& r : regions) {
    auto e = pack(r.guest_addr, r.size, r.user_addr, r.fd_offset);
    p.insert(p.end(), e.begin(), e.end());
    fds.push_back(r.fd);
  }
  return send(Request::SetMemTable, p, fds);
}

Result<void> Frontend::start_ring(uint32_t index, const Ring& ring) {
  TRY(send(Request::SetVringNum, pack(index, uint32_t{ring.size})));
  TRY(send(Request::SetVringAddr, pack(index, kVringFlagLog, ring.desc, ring.used, ring.avail, ring.log_used)));
  TRY(send(Request::SetVringBase, pack(index, uint32_t{ring.next_avail})));
  const int kick[] = {ring.kick}, call_fd[] = {ring.call};
  TRY(send(Request::SetVringKick, pack(uint64_t{index}), kick));
  TRY(send(Request::SetVringCall, pack(uint64_t{index}), call_fd));
  return send(Request::SetVringEnable, pack(index, uint32_t{1}));
}

Result<uint16_t> Frontend::stop_ring(uint32_t index) {
  auto reply = TRY(call(Request::GetVringBase, pack(index, uint32_t{0}), 8));
  uint32_t got_index, num;
  std::memcpy(&got_index, reply.data(), 4);
  std::memcpy(&num, reply.data() + 4, 4);
  if (got_index != index || num > 0xffff)
    return fail<uint16_t>(make_error(EBADMSG, "vhost-user: GET_VRING_BASE for ring {} answered ring {} at {}", index, got_index, num));
  return static_cast<uint16_t>(num);
}

}  // namespace evmm::vhost
