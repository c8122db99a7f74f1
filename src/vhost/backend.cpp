#include "vhost/backend.h"

#include <fcntl.h>
#include <sys/epoll.h>
#include <unistd.h>

#include <algorithm>
#include <cstring>

#include "base/log.h"
#include "devices/virtio/virtio_abi.h"

namespace evmm::vhost {

namespace {

// Tokens: a ring's kick fd is its index; the connection and the device's own fds carry a bit.
constexpr uint64_t kConnToken = 1ull << 62;
constexpr uint64_t kDeviceToken = 1ull << 63;
constexpr uint64_t kVersion1 = 1ull << VIRTIO_F_VERSION_1;
constexpr uint64_t kProtocolOffered = (1ull << kProtoMq) | (1ull << kProtoLogShmfd) | (1ull << kProtoReplyAck) |
                                      (1ull << kProtoConfig) | (1ull << kProtoResetDevice) |
                                      (1ull << kProtoConfigureMemSlots);
// What the backend itself offers beside the device's features.
constexpr uint64_t kBackendFeatures = kVersion1 | kFeatureProtocolFeatures | kFeatureLogAll;


}  // namespace

std::shared_ptr<Backend> Backend::create(std::shared_ptr<virtio::VirtioDevice> device, UniqueFd conn) {
  return std::shared_ptr<Backend>(new Backend(std::move(device), std::move(conn)));
}

Backend::Backend(std::shared_ptr<virtio::VirtioDevice> device, UniqueFd conn) : device_(std::move(device)), conn_(std::move(conn)) {
  auto sizes = device_->queue_sizes();
  queue_storage_ = std::make_unique<virtio::Virtqueue[]>(sizes.size());
  queues_ = std::span(queue_storage_.get(), sizes.size());
  for (size_t i = 0; i < sizes.size(); ++i) {
    queues_[i].set_max_size(sizes[i]);
    queues_[i].track_writes(true);  // LOG_ALL may come while chains are in flight
  }
  rings_.resize(sizes.size());
}

Backend::~Backend() {
  if (active_) device_->reset();
}

std::string Backend::why_finished() const { return finished() ? why_finished_ : std::string(); }

void Backend::finish(std::string why) {
  if (finished()) return;
  deactivate();
  why_finished_ = std::move(why);
  if (ops_) (void)ops_->remove(conn_.get());
  finished_.store(true, std::memory_order_release);
}

void Backend::init(EventOps& ops) {
  ops_ = &ops;
  if (auto r = ops.add(conn_.get(), EPOLLIN, kConnToken); !r) finish(r.error().message());
  TaggedEventOps dev_ops(ops, kDeviceToken);
  device_->init_events(dev_ops);
  ops_ = nullptr;
}

void Backend::process(const Event& ev, EventOps& ops) {
  ops_ = &ops;
  if (ev.token & kDeviceToken) {
    TaggedEventOps dev_ops(ops, kDeviceToken);
    device_->process_event(Event{ev.fd, ev.events, ev.token & ~kDeviceToken}, dev_ops);
  } else if (ev.token == kConnToken) {
    auto f = read_frame(conn_.get());
    if (!f) {
      if (f.error().code() != ECONNRESET) stats_.bad_messages.fetch_add(1, std::memory_order_relaxed);
      finish(f.error().message());
      return;
    }
    // The message was read whole, so the stream stays in step whatever the answer.
    const auto req = static_cast<Request>(f->header.request);
    auto m = parse_message(f->header, f->payload, std::move(f->fds));
    Result<std::optional<std::vector<uint8_t>>> reply = m ? handle(*m, ops) : tl::unexpected(m.error());
    if (m) stats_.messages.fetch_add(1, std::memory_order_relaxed);
    if (!reply) {
      stats_.bad_messages.fetch_add(1, std::memory_order_relaxed);
      if (m) LOG_WARN("vhost-user: {} refused: {}", to_string(req), reply.error().message());
      else LOG_WARN("{}", reply.error().message());
    }
    // A frontend that asked for an answer waits for one: a refused GET_* cannot be answered, so the
    // connection ends rather than leave it waiting; any other request is answered with a nack when
    // REPLY_ACK was negotiated and the request asked for it.
    const bool asks = f->header.flags & kFlagNeedReply;
    Result<void> sent;
    if (reply && *reply)
      sent = send_reply(conn_.get(), req, **reply);
    else if (!reply && (req == Request::GetFeatures || req == Request::GetProtocolFeatures ||
                        req == Request::GetVringBase || req == Request::GetConfig || req == Request::GetQueueNum ||
                        req == Request::GetMaxMemSlots || req == Request::SetLogBase))
      finish(fmt::format("vhost-user: cannot answer {}: {}", to_string(req), reply.error().message()));
    else if (asks && (protocol_ & (1ull << kProtoReplyAck)))
      sent = send_reply(conn_.get(), req, pack(uint64_t{reply ? 0u : 1u}));
    if (!sent) finish(sent.error().message());
  } else if (ev.token < rings_.size()) {
    const auto q = static_cast<uint16_t>(ev.token);
    uint64_t n;
    (void)!::read(ev.fd, &n, sizeof n);  // one read takes the whole count (and epoll said it is there)
    stats_.kicks.fetch_add(1, std::memory_order_relaxed);
    if (active_ && queues_[q].ready()) {
      device_->notify(q);
      if (queues_[q].broken()) needs_reset(fmt::format("ring {}: the available index jumped", q));
    }
  }
  ops_ = nullptr;
}

Result<uint64_t> Backend::to_guest(uint64_t user_addr) const {
  for (const auto& r : table_)
    if (user_addr >= r.user_addr && user_addr - r.user_addr < r.size) return r.guest_addr + (user_addr - r.user_addr);
  return make_error(EFAULT, "vhost-user: ring address {:#x} is in no memory region", user_addr);
}

Result<void> Backend::set_memory(std::vector<MemRegion> regions, std::vector<UniqueFd> fds) {
  // A table is taken whole or not at all: the old one stays if any region is refused. The device's
  // writes go to vhost's log (SET_LOG_BASE), so the space keeps none of its own.
  auto space = TRY(AddressSpace::create(DirtyTracking::Off));
  for (size_t i = 0; i < regions.size(); ++i)
    TRY_CTX(space->add_region(GuestAddress(regions[i].guest_addr), regions[i].size, fds[i].get(), regions[i].mmap_offset),
            "vhost-user: memory table");
  unbind();
  table_ = std::move(regions);
  space_ = std::move(space);
  return bind();
}

Result<void> Backend::add_memory(const MemRegion& r, int fd) {
  if (table_.size() >= kMaxMemSlots) return make_error(ENOSPC, "more than {} memory slots", kMaxMemSlots);
  if (!space_) space_ = TRY(AddressSpace::create(DirtyTracking::Off));
  TRY_CTX(space_->add_region(GuestAddress(r.guest_addr), r.size, fd, r.mmap_offset), "vhost-user: ADD_MEM_REG");
  unbind();
  table_.push_back(r);
  return bind();
}

Result<void> Backend::remove_memory(const MemRegion& r) {
  auto it = std::find_if(table_.begin(), table_.end(),
                         [&](const MemRegion& t) { return t.guest_addr == r.guest_addr && t.size == r.size; });
  if (it == table_.end()) return make_error(ENOENT, "no memory region {:#x}+{:#x}", r.guest_addr, r.size);
  // The device stops first: nothing of it may still be in flight on the region when it goes.
  unbind();
  TRY_CTX(space_->remove_region(GuestAddress(r.guest_addr)), "vhost-user: REM_MEM_REG");
  table_.erase(it);
  return bind();
}

void Backend::unbind() {
  deactivate();
  mem_.reset();
}

Result<void> Backend::bind() {
  if (table_.empty()) return {};
  mem_.emplace(space_->pin());
  return try_activate();  // the rings resume where deactivate() left them
}

Result<void> Backend::try_activate() {
  if (!mem_) return {};
  for (size_t q = 0; q < rings_.size(); ++q) {
    Ring& r = rings_[q];
    if (!r.started || !r.enabled || queues_[q].ready()) continue;
    auto& layout = queues_[q].layout();
    layout.size = r.num;
    layout.desc = GuestAddress(TRY(to_guest(r.addr->desc)));
    layout.avail = GuestAddress(TRY(to_guest(r.addr->avail)));
    layout.used = GuestAddress(TRY(to_guest(r.addr->used)));
    TRY(queues_[q].activate(*mem_, device_features()));
    queues_[q].resume(r.base);
    if (active_) device_->notify(static_cast<uint16_t>(q));
  }
  bool any = false;
  for (size_t q = 0; q < queues_.size(); ++q) any |= queues_[q].ready();
  if (!active_ && any) {
    TRY(device_->activate(*mem_, queues_, device_features(), *this));
    active_ = true;
    // Kicks that came before the rings were enabled found nothing to serve: look now.
    for (size_t q = 0; q < queues_.size(); ++q)
      if (queues_[q].ready()) device_->notify(static_cast<uint16_t>(q));
  }
  return {};
}

void Backend::deactivate() {
  if (active_) device_->reset();
  active_ = false;
  for (size_t q = 0; q < queues_.size(); ++q) {
    if (queues_[q].ready()) rings_[q].base = queues_[q].next_avail();
    queues_[q].reset();
  }
}

Result<std::optional<std::vector<uint8_t>>> Backend::handle(Message& m, EventOps& ops) {
  using Reply = std::optional<std::vector<uint8_t>>;
  auto ring = [&](uint32_t index) -> Result<Ring*> {
    if (index >= rings_.size()) return make_error(EINVAL, "ring {} of a device with {}", index, rings_.size());
    return &rings_[index];
  };
  switch (m.request) {
    case Request::GetFeatures: return Reply(pack(device_->features() | kBackendFeatures));
    case Request::SetFeatures: {
      const uint64_t f = std::get<uint64_t>(m.payload);
      const uint64_t offered = device_->features() | kBackendFeatures;
      if (f & ~offered) return make_error(EINVAL, "features {:#x} were not offered ({:#x})", f & ~offered, offered);
      acked_ = f & ~kFeatureProtocolFeatures;
      protocol_negotiated_ = f & kFeatureProtocolFeatures;
      // Without protocol features a ring is enabled as soon as it starts (the spec's rule).
      if (!protocol_negotiated_)
        for (auto& r : rings_) r.enabled = r.started;
      // A frontend turns LOG_ALL on and off while the device runs (a migration's start and end).
      apply_log();
      return Reply();
    }
    case Request::SetLogBase: {
      // The frontend waits for this reply (LOG_SHMFD); a log that cannot be mapped ends the
      // connection, as a GET_* that cannot be answered does.
      const auto a = std::get<LogArea>(m.payload);
      log_ = std::make_unique<PageLog>(TRY_CTX(PageLog::map(m.fds[0].get(), a.size, a.offset), "vhost-user: dirty log"));
      apply_log();
      return Reply(pack(uint64_t{0}));
    }
    case Request::GetProtocolFeatures: {
      // CONFIG only for a device with a config space (QEMU warns about it for one without).
      uint64_t f = kProtocolOffered;
      if (device_->type() == virtio::DeviceType::Rng) f &= ~(1ull << kProtoConfig);
      return Reply(pack(f));
    }
    case Request::SetProtocolFeatures: {
      const uint64_t f = std::get<uint64_t>(m.payload);
      if (f & ~kProtocolOffered) return make_error(EINVAL, "protocol features {:#x} were not offered", f & ~kProtocolOffered);
      protocol_ = f;
      return Reply();
    }
    case Request::GetQueueNum: return Reply(pack(uint64_t{rings_.size()}));
    case Request::GetMaxMemSlots: return Reply(pack(uint64_t{kMaxMemSlots}));
    case Request::SetOwner: return Reply();
    case Request::ResetOwner:
    case Request::ResetDevice:
      deactivate();
      for (auto& r : rings_) {
        if (r.kick.valid()) (void)ops.remove(r.kick.get());
        r = Ring();
      }
      acked_ = 0;
      protocol_negotiated_ = false;
      apply_log();
      return Reply();
    case Request::SetMemTable: {
      auto regions = std::get<std::vector<MemRegion>>(std::move(m.payload));
      TRY(set_memory(std::move(regions), std::move(m.fds)));
      return Reply();
    }
    case Request::AddMemReg:
      TRY(add_memory(std::get<MemRegion>(m.payload), m.fds[0].get()));
      return Reply();
    case Request::RemMemReg:
      TRY(remove_memory(std::get<MemRegion>(m.payload)));
      return Reply();
    case Request::SetVringNum: {
      const auto s = std::get<VringState>(m.payload);
      Ring* r = TRY(ring(s.index));
      if (s.num == 0 || s.num > queues_[s.index].max_size() || (s.num & (s.num - 1)))
        return make_error(EINVAL, "ring {} size {} (a power of two up to {})", s.index, s.num, queues_[s.index].max_size());
      r->num = static_cast<uint16_t>(s.num);
      return Reply();
    }
    case Request::SetVringAddr: {
      const auto a = std::get<VringAddr>(m.payload);
      Ring* r = TRY(ring(a.index));
      r->addr = a;
      return Reply();
    }
    case Request::SetVringBase: {
      const auto s = std::get<VringState>(m.payload);
      Ring* r = TRY(ring(s.index));
      if (s.num > 0xffff) return make_error(EINVAL, "ring {} base {}", s.index, s.num);
      r->base = static_cast<uint16_t>(s.num);
      return Reply();
    }
    case Request::GetVringBase: {
      // Stops the ring: the device lets go of every ring, and this one answers where it stopped.
      const auto s = std::get<VringState>(m.payload);
      Ring* r = TRY(ring(s.index));
      const bool was_active = active_;
      deactivate();
      r->started = r->enabled = false;
      if (r->kick.valid()) (void)ops.remove(r->kick.get());
      r->kick.reset();
      if (was_active) TRY(try_activate());
      std::vector<uint8_t> out(8);
      const uint32_t num = r->base;
      std::memcpy(out.data(), &s.index, 4);
      std::memcpy(out.data() + 4, &num, 4);
      return Reply(std::move(out));
    }
    case Request::SetVringKick:
    case Request::SetVringCall:
    case Request::SetVringErr: {
      const auto f = std::get<VringFd>(m.payload);
      Ring* r = TRY(ring(f.index));
      UniqueFd fd = f.has_fd ? std::move(m.fds[0]) : UniqueFd();
      if (m.request == Request::SetVringCall) {
        r->call = std::move(fd);
      } else if (m.request == Request::SetVringErr) {
        r->err = std::move(fd);
      } else {
        // Polling mode (no fd) is not supported: a ring without a kick fd does not start.
        if (!fd.valid()) return make_error(EINVAL, "ring {} without a kick fd (polling is not supported)", f.index);
        if (!r->num || !r->addr) return make_error(EINVAL, "ring {} kicked before its size and address were set", f.index);
        if (r->kick.valid()) (void)ops.remove(r->kick.get());
        r->kick = std::move(fd);
        TRY(ops.add(r->kick.get(), EPOLLIN, f.index));
        r->started = true;
        if (!protocol_negotiated_) r->enabled = true;
        TRY(try_activate());
      }
      return Reply();
    }
    case Request::SetVringEnable: {
      const auto s = std::get<VringState>(m.payload);
      Ring* r = TRY(ring(s.index));
      r->enabled = s.num != 0;
      if (r->enabled) TRY(try_activate());
      return Reply();
    }
    case Request::GetConfig: {
      auto& c = std::get<ConfigAccess>(m.payload);
      std::vector<uint8_t> out(12 + c.size);
      std::memcpy(out.data(), &c.offset, 4);
      std::memcpy(out.data() + 4, &c.size, 4);
      std::memcpy(out.data() + 8, &c.flags, 4);
      device_->read_config(c.offset, std::span(out).subspan(12));
      return Reply(std::move(out));
    }
    case Request::SetConfig: {
      auto& c = std::get<ConfigAccess>(m.payload);
      device_->write_config(c.offset, c.data);
      return Reply();
    }
    case Request::SetBackendReqFd: return Reply();  // BACKEND_REQ is not offered; the fd is closed
    case Request::SetLogFd: break;
  }
  return make_error(ENOSYS, "not implemented");
}

void Backend::apply_log() {
  PageLog* log = log_ && (acked_ & kFeatureLogAll) ? log_.get() : nullptr;
  for (auto& q : queues_) q.set_write_log(log);
}

void Backend::used(uint16_t q) {
  if (q >= queues_.size() || !queues_[q].needs_interrupt() || !rings_[q].call.valid()) return;
  const uint64_t one = 1;
  if (::write(rings_[q].call.get(), &one, sizeof one) == sizeof one) stats_.calls.fetch_add(1, std::memory_order_relaxed);
}

void Backend::config_changed() {
  // Telling the frontend needs the backend request channel (BACKEND_REQ), which is not offered.
  LOG_WARN("vhost-user: the device's config changed; the frontend is not told");
}

void Backend::needs_reset(std::string_view why) {
  LOG_ERROR("vhost-user: the device needs a reset: {}", why);
  const uint64_t one = 1;
  for (auto& r : rings_)
    if (r.err.valid() && ::write(r.err.get(), &one, sizeof one) == sizeof one)
      stats_.errors_signalled.fetch_add(1, std::memory_order_relaxed);
  deactivate();
  for (auto& r : rings_) r.started = false;
}

}  // namespace evmm::vhost
