#include "vhost/user_device.h"

#include <linux/virtio_blk.h>
#include <linux/virtio_console.h>
#include <sys/epoll.h>

#include <algorithm>
#include <cstring>

#include "base/log.h"
#include "devices/virtio/net/net_abi.h"
#include "devices/virtio/virtio_abi.h"

namespace evmm::vhost {

namespace {

constexpr uint64_t kSocketToken = 1ull << 32;
// The ring features evmm's transport passes through; the backend applies them on the rings it owns.
constexpr uint64_t kRingFeatures = (1ull << VIRTIO_RING_F_INDIRECT_DESC) | (1ull << VIRTIO_RING_F_EVENT_IDX);
// Device features (bits 0 to 23) evmm does not carry: config writes (CONFIG_WCE, dropped here) and
// more than one queue (MQ: one request queue for now).
constexpr uint64_t kBlkWithheld = (1ull << VIRTIO_BLK_F_CONFIG_WCE) | (1ull << VIRTIO_BLK_F_MQ);
constexpr uint32_t kBlkConfigSize = 60;  // struct virtio_blk_config up to write_zeroes_may_unmap
constexpr uint16_t kBlkQueueSize = 256;
// virtio-fs (virtio 1.2 §5.11): queue 0 is hiprio (FORGET, INTERRUPT), queue 1 the one request queue;
// NOTIFICATION (bit 0) would add a notification queue, which neither evmm nor Linux 6.1 has.
constexpr uint64_t kFsWithheld = 1ull << 0;
constexpr size_t kFsTagSize = 36;
constexpr uint16_t kFsQueueSize = 128;  // QEMU's vhost-user-fs default
// virtio-net (virtio 1.2 §5.1): one receive and one transmit queue. Withheld: what needs a control
// queue (CTRL_VQ and everything behind it) and multiqueue. MAC and STATUS are the frontend's own.
constexpr uint64_t kNetWithheld = (1ull << VIRTIO_NET_F_CTRL_VQ) | (1ull << VIRTIO_NET_F_CTRL_RX) |
                                  (1ull << VIRTIO_NET_F_CTRL_VLAN) | (1ull << VIRTIO_NET_F_GUEST_ANNOUNCE) |
                                  (1ull << VIRTIO_NET_F_MQ) | (1ull << VIRTIO_NET_F_CTRL_MAC_ADDR) |
                                  (1ull << VIRTIO_NET_F_MAC) | (1ull << VIRTIO_NET_F_STATUS);
constexpr uint64_t kNetOwn = (1ull << VIRTIO_NET_F_MAC) | (1ull << VIRTIO_NET_F_STATUS);
constexpr uint16_t kNetQueueSize = 256;
// virtio-console (§5.3): one port, receiveq0 and transmitq0. SIZE, MULTIPORT (control queues) and
// EMERG_WRITE (a config write) are withheld: the config space reads as zeros.
constexpr uint64_t kConsoleWithheld = (1ull << VIRTIO_CONSOLE_F_SIZE) | (1ull << VIRTIO_CONSOLE_F_MULTIPORT) |
                                      (1ull << VIRTIO_CONSOLE_F_EMERG_WRITE);
constexpr uint16_t kConsoleQueueSize = 64;

Result<std::vector<uint8_t>> fs_config(const std::string& tag) {
  if (tag.empty() || tag.size() > kFsTagSize)
    return make_error(EINVAL, "virtio-fs tag '{}': 1 to {} bytes", tag, kFsTagSize);
  if (tag.find('\0') != std::string::npos) return make_error(EINVAL, "virtio-fs tag: a NUL byte");
  std::vector<uint8_t> c(kFsTagSize + 4, 0);  // struct virtio_fs_config
  std::memcpy(c.data(), tag.data(), tag.size());
  c[kFsTagSize] = 1;  // num_request_queues, little-endian
  return c;
}

Result<std::vector<uint8_t>> net_config(const std::array<uint8_t, 6>& mac) {
  if (mac[0] & 1) return make_error(EINVAL, "virtio-net MAC {:02x}:..: a multicast address", mac[0]);
  std::vector<uint8_t> c(8, 0);  // struct virtio_net_config up to status
  std::memcpy(c.data(), mac.data(), 6);
  c[6] = VIRTIO_NET_S_LINK_UP;  // status, little-endian
  return c;
}

}  // namespace

Result<std::shared_ptr<UserDevice>> UserDevice::connect(const UserDeviceConfig& cfg, const std::string& path) {
  std::shared_ptr<UserDevice> d(new UserDevice(cfg.type, TRY(Frontend::connect(path, cfg.timeout_ms))));
  TRY(d->setup(cfg));
  return d;
}

Result<std::shared_ptr<UserDevice>> UserDevice::over(const UserDeviceConfig& cfg, UniqueFd sock) {
  std::shared_ptr<UserDevice> d(new UserDevice(cfg.type, TRY(Frontend::over(std::move(sock), cfg.timeout_ms))));
  TRY(d->setup(cfg));
  return d;
}

Result<void> UserDevice::setup(const UserDeviceConfig& cfg) {
  switch (type_) {
    case virtio::DeviceType::Block:
      TRY(fe_->negotiate((0xffffffull & ~kBlkWithheld) | kRingFeatures));
      config_ = TRY(fe_->get_config(0, kBlkConfigSize));
      sizes_.assign(1, kBlkQueueSize);
      break;
    case virtio::DeviceType::Fs:
      config_ = TRY(fs_config(cfg.fs_tag));  // before the backend is bothered
      TRY(fe_->negotiate((0xffffffull & ~kFsWithheld) | kRingFeatures));
      sizes_.assign(2, kFsQueueSize);
      break;
    case virtio::DeviceType::Net:
      config_ = TRY(net_config(cfg.mac));
      TRY(fe_->negotiate((0xffffffull & ~kNetWithheld) | kRingFeatures));
      own_features_ = kNetOwn;
      sizes_.assign(2, kNetQueueSize);
      break;
    case virtio::DeviceType::Console:
      TRY(fe_->negotiate((0xffffffull & ~kConsoleWithheld) | kRingFeatures));
      sizes_.assign(2, kConsoleQueueSize);
      break;
    default:
      return make_error(EOPNOTSUPP, "vhost-user: evmm drives block, fs, net and console backends (asked for {})",
                        virtio::to_string(type_));
  }
  features_ = (fe_->acked_features() & (0xffffffull | kRingFeatures)) | own_features_;
  started_.assign(sizes_.size(), false);
  for (size_t q = 0; q < sizes_.size(); ++q) call_fds_.push_back(TRY(EventFd::create()));
  return {};
}

Result<void> UserDevice::start_dirty_log(const PageLog& log) {
  std::lock_guard lock(fe_mu_);
  TRY(fe_->set_log_base(log.fd(), log.size()));
  TRY(fe_->set_logging(true));
  logging_ = true;
  return {};
}

Result<void> UserDevice::stop_dirty_log() {
  std::lock_guard lock(fe_mu_);
  logging_ = false;
  return fe_->set_logging(false);
}

void UserDevice::read_config(uint64_t offset, std::span<uint8_t> data) const {
  for (size_t i = 0; i < data.size(); ++i) data[i] = offset + i < config_.size() ? config_[offset + i] : 0;
}

Result<void> UserDevice::activate(const GuestMemory& mem, std::span<virtio::Virtqueue> queues, uint64_t features,
                                  virtio::VirtioSignals& signals) {
  if (kicks_.size() != queues.size()) return make_error(EINVAL, "vhost-user: the transport gave {} kick fds", kicks_.size());
  if (mem.memfd() < 0) return make_error(EINVAL, "vhost-user: guest memory has no memfd to share");
  std::lock_guard lock(fe_mu_);
  signals_ = &signals;
  TRY(fe_->set_features((features & ~own_features_) | (logging_ ? kFeatureLogAll : 0)));
  std::vector<Frontend::Region> regions;
  for (const auto& r : mem.regions())
    regions.push_back({r.start.raw(), r.size, r.start.raw(), mem.memfd(), r.fd_offset});
  TRY(fe_->set_mem_table(regions));
  for (size_t q = 0; q < queues.size(); ++q) {
    if (!queues[q].ready()) continue;
    const auto& l = queues[q].layout();
    TRY(fe_->start_ring(uint32_t(q), Frontend::Ring{l.size, l.desc.raw(), l.avail.raw(), l.used.raw(), 0, kicks_[q],
                                                    call_fds_[q].fd(), l.used.raw()}));
    started_[q] = true;
  }
  return {};
}

void UserDevice::reset() {
  std::lock_guard lock(fe_mu_);
  for (size_t q = 0; q < started_.size(); ++q) {
    if (!started_[q]) continue;
    started_[q] = false;
    if (fe_->broken()) continue;
    if (auto r = fe_->stop_ring(uint32_t(q)); !r) LOG_WARN("vhost-user: stopping ring {}: {}", q, r.error().message());
  }
  signals_ = nullptr;
}

void UserDevice::notify(uint16_t q) {
  // The transport does not wait on the notify fds of a device that takes them; a notification that
  // still comes this way is passed on.
  if (q < kicks_.size()) {
    const uint64_t one = 1;
    (void)!::write(kicks_[q], &one, sizeof one);
  }
}

void UserDevice::init_events(EventOps& ops) {
  for (size_t q = 0; q < call_fds_.size(); ++q)
    if (auto r = ops.add(call_fds_[q].fd(), EPOLLIN, q); !r) LOG_ERROR("vhost-user: {}", r.error().message());
  // The backend never speaks unasked: readable or hung up means it went away (or broke the protocol).
  if (auto r = ops.add(fe_->fd(), EPOLLRDHUP, kSocketToken); !r) LOG_ERROR("vhost-user: {}", r.error().message());
}

void UserDevice::process_event(const Event& ev, EventOps& ops) {
  if (ev.token == kSocketToken) {
    (void)ops.remove(fe_->fd());
    {
      std::lock_guard lock(fe_mu_);
      fe_->mark_broken();
    }
    if (signals_) signals_->needs_reset("vhost-user: the backend went away");
    LOG_WARN("vhost-user: the backend closed its connection; the device needs a reset");
    return;
  }
  if (ev.token >= call_fds_.size()) return;
  (void)call_fds_[ev.token].consume();
  ++calls_;
  if (signals_ && started_[ev.token]) signals_->used(uint16_t(ev.token));
}

}  // namespace evmm::vhost
