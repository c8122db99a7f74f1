#include "devices/virtio/mmio_transport.h"
#include "devices/virtio/virtio_abi.h"

#include <sys/epoll.h>

#include <cstring>

#include "base/log.h"

namespace evmm::virtio {

namespace {

// Tokens: a queue's eventfd is its index; the device's own fds carry this bit over their token.
constexpr uint64_t kDeviceToken = 1ull << 63;
constexpr uint64_t kVersion1 = 1ull << VIRTIO_F_VERSION_1;

}  // namespace

std::string_view to_string(DeviceType t) {
  switch (t) {
    case DeviceType::Net: return "net";
    case DeviceType::Block: return "blk";
    case DeviceType::Console: return "console";
    case DeviceType::Rng: return "rng";
    case DeviceType::Fs: return "fs";
  }
  return "unknown";
}

std::string cmdline_entry(uint64_t base, uint32_t gsi) {
  return fmt::format("virtio_mmio.device={}@{:#x}:{}", MmioTransport::kWindow, base, gsi);
}

MmioTransport::MmioTransport(std::shared_ptr<VirtioDevice> device, const GuestMemory& mem, uint64_t base,
                             std::shared_ptr<InterruptLine> irq)
    : device_(std::move(device)), mem_(mem), base_(base), irq_(std::move(irq)) {
  auto sizes = device_->queue_sizes();
  queue_storage_ = std::make_unique<Virtqueue[]>(sizes.size());
  queues_ = std::span(queue_storage_.get(), sizes.size());
  for (size_t i = 0; i < sizes.size(); ++i) queues_[i].set_max_size(sizes[i]);
}

MmioTransport::~MmioTransport() {
  // The registrations go first: no notification may arrive for a device being torn down.
  notify_regs_.clear();
  std::lock_guard lock(mu_);
  if (active_) device_->reset();
}

Result<std::shared_ptr<MmioTransport>> MmioTransport::create(std::shared_ptr<VirtioDevice> device, const GuestMemory& mem,
                                                             IoEventRegistry& ioevents, uint64_t base,
                                                             std::shared_ptr<InterruptLine> irq) {
  std::shared_ptr<MmioTransport> t(new MmioTransport(std::move(device), mem, base, std::move(irq)));
  for (size_t q = 0; q < t->queues_.size(); ++q) {
    auto fd = std::make_shared<EventFd>(TRY(EventFd::create()));
    t->notify_regs_.push_back(TRY(ioevents.add(IoSpace::Mmio, base + VIRTIO_MMIO_QUEUE_NOTIFY, 4, IoMatch::value(q), fd)));
    t->notify_fds_.push_back(std::move(fd));
  }
  if (t->device_->takes_notifications()) {
    std::vector<int> fds;
    for (const auto& fd : t->notify_fds_) fds.push_back(fd->fd());
    t->device_->take_notifications(fds);
  }
  return t;
}

uint32_t MmioTransport::status() const {
  std::lock_guard lock(mu_);
  return status_;
}

uint64_t MmioTransport::driver_features() const {
  std::lock_guard lock(mu_);
  return driver_features_;
}

uint64_t MmioTransport::queue_faults() const {
  uint64_t n = 0;
  for (const auto& q : queues_) n += q.stats().total_faults();
  return n;
}

uint64_t MmioTransport::queue_fault(QueueFault f) const {
  uint64_t n = 0;
  for (const auto& q : queues_) n += q.stats().fault(f);
  return n;
}

void MmioTransport::read(const BusRead& io) {
  std::memset(io.data.data(), 0, io.data.size());
  if (io.offset >= VIRTIO_MMIO_CONFIG) {
    std::lock_guard lock(mu_);
    device_->read_config(io.offset - VIRTIO_MMIO_CONFIG, io.data);
    return;
  }
  if (io.data.size() != 4 || io.offset % 4) {
    stats_.bad_accesses.fetch_add(1, std::memory_order_relaxed);
    return;
  }
  uint32_t v;
  {
    std::lock_guard lock(mu_);
    v = read_register(io.offset);
  }
  std::memcpy(io.data.data(), &v, 4);
}

void MmioTransport::write(const BusWrite& io) {
  if (io.offset >= VIRTIO_MMIO_CONFIG) {
    std::lock_guard lock(mu_);
    device_->write_config(io.offset - VIRTIO_MMIO_CONFIG, io.data);
    return;
  }
  if (io.data.size() != 4 || io.offset % 4) {
    stats_.bad_accesses.fetch_add(1, std::memory_order_relaxed);
    return;
  }
  uint32_t v;
  std::memcpy(&v, io.data.data(), 4);
  std::lock_guard lock(mu_);
  write_register(io.offset, v);
}

Virtqueue* MmioTransport::selected() { return queue_sel_ < queues_.size() ? &queues_[queue_sel_] : nullptr; }

uint32_t MmioTransport::read_register(uint64_t offset) {
  Virtqueue* q = selected();
  switch (offset) {
    case VIRTIO_MMIO_MAGIC_VALUE: return kMagic;
    case VIRTIO_MMIO_VERSION: return 2;
    case VIRTIO_MMIO_DEVICE_ID: return static_cast<uint32_t>(device_->type());
    case VIRTIO_MMIO_VENDOR_ID: return kVendor;
    case VIRTIO_MMIO_DEVICE_FEATURES: {
      uint64_t f = device_->features() | kVersion1;
      return device_features_sel_ == 0 ? uint32_t(f) : device_features_sel_ == 1 ? uint32_t(f >> 32) : 0;
    }
    case VIRTIO_MMIO_QUEUE_NUM_MAX: return q ? q->max_size() : 0;
    case VIRTIO_MMIO_QUEUE_READY: return q && q->ready();
    case VIRTIO_MMIO_INTERRUPT_STATUS: return interrupt_status_.load();
    case VIRTIO_MMIO_STATUS: return status_;
    case VIRTIO_MMIO_CONFIG_GENERATION: return config_generation_.load();
    // No shared memory regions: a length of all ones says so (§4.2.2).
    case VIRTIO_MMIO_SHM_LEN_LOW:
    case VIRTIO_MMIO_SHM_LEN_HIGH:
    case VIRTIO_MMIO_SHM_BASE_LOW:
    case VIRTIO_MMIO_SHM_BASE_HIGH: return UINT32_MAX;
  }
  stats_.bad_accesses.fetch_add(1, std::memory_order_relaxed);
  return 0;
}

void MmioTransport::write_register(uint64_t offset, uint32_t v) {
  Virtqueue* q = selected();
  // Only for a selected queue that is not ready: the driver must not move a ready one (§4.2.3.2).
  auto set_half = [&](GuestAddress& a, bool high) {
    uint64_t raw = a.raw();
    raw = high ? (raw & 0xffffffffull) | (uint64_t(v) << 32) : (raw & ~0xffffffffull) | v;
    a = GuestAddress(raw);
  };
  switch (offset) {
    case VIRTIO_MMIO_DEVICE_FEATURES_SEL: device_features_sel_ = v; return;
    case VIRTIO_MMIO_DRIVER_FEATURES_SEL: driver_features_sel_ = v; return;
    case VIRTIO_MMIO_DRIVER_FEATURES:
      if (status_ & VIRTIO_CONFIG_S_FEATURES_OK || driver_features_sel_ > 1) break;
      if (driver_features_sel_ == 0) driver_features_ = (driver_features_ & ~0xffffffffull) | v;
      else driver_features_ = (driver_features_ & 0xffffffffull) | (uint64_t(v) << 32);
      return;
    case VIRTIO_MMIO_QUEUE_SEL: queue_sel_ = v; return;
    case VIRTIO_MMIO_QUEUE_NUM:
      if (!q || q->ready()) break;
      q->layout().size = static_cast<uint16_t>(std::min<uint32_t>(v, UINT16_MAX));
      return;
    case VIRTIO_MMIO_QUEUE_READY: write_queue_ready(v); return;
    case VIRTIO_MMIO_QUEUE_NOTIFY:
      // The ioeventfds take every write naming a queue; one that gets here names none.
      stats_.bad_notifies.fetch_add(1, std::memory_order_relaxed);
      return;
    case VIRTIO_MMIO_INTERRUPT_ACK: interrupt_status_.fetch_and(~v); return;
    case VIRTIO_MMIO_STATUS: write_status(v); return;
    default: break;
  }
  if (q && !q->ready()) {
    switch (offset) {
      case VIRTIO_MMIO_QUEUE_DESC_LOW: set_half(q->layout().desc, false); return;
      case VIRTIO_MMIO_QUEUE_DESC_HIGH: set_half(q->layout().desc, true); return;
      case VIRTIO_MMIO_QUEUE_AVAIL_LOW: set_half(q->layout().avail, false); return;
      case VIRTIO_MMIO_QUEUE_AVAIL_HIGH: set_half(q->layout().avail, true); return;
      case VIRTIO_MMIO_QUEUE_USED_LOW: set_half(q->layout().used, false); return;
      case VIRTIO_MMIO_QUEUE_USED_HIGH: set_half(q->layout().used, true); return;
    }
  }
  stats_.bad_accesses.fetch_add(1, std::memory_order_relaxed);
}

void MmioTransport::write_queue_ready(uint32_t v) {
  Virtqueue* q = selected();
  if (!q || v > 1) {
    stats_.bad_accesses.fetch_add(1, std::memory_order_relaxed);
    return;
  }
  if (v == 0) {
    // Linux writes 0 when it deletes a queue (vm_del_vq); the device stops using it at once.
    QueueLayout keep = q->layout();
    q->reset();
    q->layout() = keep;
    return;
  }
  if (q->ready()) return;
  if (auto r = q->activate(mem_, driver_features_); !r) needs_reset(fmt::format("queue {}: {}", queue_sel_, r.error().message()));
}

void MmioTransport::write_status(uint32_t v) {
  if (v == 0) {
    reset_locked();
    return;
  }
  // §2.1.2: the driver only adds bits (NEEDS_RESET is the device's).
  const uint32_t old = status_;
  const uint32_t kept = old & ~VIRTIO_CONFIG_S_NEEDS_RESET;
  if ((v & kept) != kept) {
    stats_.bad_accesses.fetch_add(1, std::memory_order_relaxed);
    return;
  }
  uint32_t next = v | (old & VIRTIO_CONFIG_S_NEEDS_RESET);
  if ((next & ~old) & VIRTIO_CONFIG_S_FEATURES_OK) {
    const uint64_t offered = device_->features() | kVersion1;
    if ((driver_features_ & ~offered) || !(driver_features_ & kVersion1)) {
      stats_.refused_features.fetch_add(1, std::memory_order_relaxed);
      LOG_WARN("virtio-{} at {:#x}: refused driver features {:#x} (offered {:#x})", to_string(device_->type()), base_,
               driver_features_, offered);
      next &= ~VIRTIO_CONFIG_S_FEATURES_OK;
    }
  }
  status_ = next;
  if ((next & ~old) & VIRTIO_CONFIG_S_DRIVER_OK) {
    if (!(next & VIRTIO_CONFIG_S_FEATURES_OK)) {
      needs_reset("DRIVER_OK without FEATURES_OK");
      return;
    }
    if (auto r = device_->activate(mem_, queues_, driver_features_, *this); !r) {
      needs_reset(r.error().message());
      return;
    }
    active_ = true;
  }
}

void MmioTransport::reset_locked() {
  if (active_) device_->reset();
  active_ = false;
  for (auto& q : queues_) q.reset();
  status_ = 0;
  driver_features_ = 0;
  device_features_sel_ = driver_features_sel_ = queue_sel_ = 0;
  interrupt_status_.store(0);
  stats_.resets.fetch_add(1, std::memory_order_relaxed);
}

void MmioTransport::interrupt(uint32_t bits) {
  interrupt_status_.fetch_or(bits);
  stats_.interrupts.fetch_add(1, std::memory_order_relaxed);
  irq_->trigger();
}

void MmioTransport::used(uint16_t q) {
  if (q >= queues_.size()) return;
  // Another process owns the ring (vhost-user) and decided to call: this transport's view of the
  // used index is stale, so it does not judge suppression again.
  if (device_->takes_notifications() || queues_[q].needs_interrupt()) interrupt(VIRTIO_MMIO_INT_VRING);
}

void MmioTransport::config_changed() {
  config_generation_.fetch_add(1);
  interrupt(VIRTIO_MMIO_INT_CONFIG);
}

void MmioTransport::needs_reset(std::string_view why) {
  if (status_ & VIRTIO_CONFIG_S_NEEDS_RESET) return;
  LOG_WARN("virtio-{} at {:#x}: needs reset: {}", to_string(device_->type()), base_, why);
  stats_.needs_reset.fetch_add(1, std::memory_order_relaxed);
  status_ |= VIRTIO_CONFIG_S_NEEDS_RESET;
  // Only a driver that finished initialisation is told by interrupt (§2.1.2).
  if (status_ & VIRTIO_CONFIG_S_DRIVER_OK) config_changed();
}

void MmioTransport::init(EventOps& ops) {
  for (size_t q = 0; q < notify_fds_.size() && !device_->takes_notifications(); ++q)
    if (auto r = ops.add(notify_fds_[q]->fd(), EPOLLIN, q); !r) LOG_ERROR("virtio: {}", r.error().message());
  TaggedEventOps dev_ops(ops, kDeviceToken);
  std::lock_guard lock(mu_);
  device_->init_events(dev_ops);
}

void MmioTransport::process(const Event& ev, EventOps& ops) {
  TaggedEventOps dev_ops(ops, kDeviceToken);
  if (ev.token & kDeviceToken) {
    std::lock_guard lock(mu_);
    device_->process_event(Event{ev.fd, ev.events, ev.token & ~kDeviceToken}, dev_ops);
    return;
  }
  const uint16_t q = static_cast<uint16_t>(ev.token);
  if (q >= notify_fds_.size()) return;
  (void)notify_fds_[q]->consume();
  std::lock_guard lock(mu_);
  // A notification before DRIVER_OK, or for a queue not ready, has nothing to serve (§4.2.3.3).
  if (!active_ || !queues_[q].ready()) return;
  device_->notify(q);
  if (queues_[q].broken()) needs_reset(fmt::format("queue {}: the available index jumped", q));
}

}  // namespace evmm::virtio
