#include "vmm/virtio_devices.h"

#include "base/log.h"
#include "devices/virtio/blk/blk.h"
#include "devices/virtio/console/console.h"
#include "devices/virtio/net/net.h"
#include "devices/virtio/rng/rng.h"
#include "memory/layout.h"
#include "sandbox/seccomp.h"
#include "vhost/user_device.h"
#include "vmm/console.h"
#include "vmm/platform_devices.h"

namespace evmm {

using namespace platform;

namespace {
// How long a vhost-user backend may take to answer one request before its device needs a reset.
constexpr int kVhostUserTimeoutMs = 5000;
}  // namespace

Result<std::unique_ptr<VirtioDevices>> VirtioDevices::create(const VmConfig& cfg, const GuestMemory& mem, IoBus& mmio,
                                                             IoEventRegistry& ioevents, PlatformDevices& platform,
                                                             ConsoleOutput& out) {
  std::unique_ptr<VirtioDevices> d(new VirtioDevices(cfg, platform));
  const VirtioConfig& v = cfg.virtio;
  size_t wanted = v.disks.size() + v.filesystems.size() + v.nets.size() + (v.console ? 1 : 0) + (v.rng ? 1 : 0);
  if (wanted > std::size(kVirtioGsis))
    return make_error(E2BIG, "{} virtio devices asked for; evmm has windows for {}", wanted, std::size(kVirtioGsis));
  for (const DiskConfig& disk : v.disks) {
    if (!disk.vhost_user.empty()) {
      auto dev = vhost::UserDevice::connect(
          {.type = virtio::DeviceType::Block, .fs_tag = {}, .mac = {}, .timeout_ms = kVhostUserTimeoutMs}, disk.vhost_user);
      if (!dev) return make_error(dev.error().code(), "--disk vhost-user={}: {}", disk.vhost_user, dev.error().message());
      TRY(d->add(std::move(*dev), "vhost-user-blk", mem, mmio, ioevents));
      continue;
    }
    virtio::BlkConfig bc;
    bc.path = disk.path;
    bc.readonly = disk.readonly;
    // The thread-pool fallback's workers run guest-driven I/O: they take the device filter.
    bc.engine_options.sandbox = cfg.seccomp && seccomp::supported();
    TRY(d->add(TRY(virtio::BlkDevice::create(bc)), "blk", mem, mmio, ioevents));
  }
  for (const FsConfig& fs : v.filesystems) {
    auto dev = vhost::UserDevice::connect(
        {.type = virtio::DeviceType::Fs, .fs_tag = fs.tag, .mac = {}, .timeout_ms = kVhostUserTimeoutMs}, fs.vhost_user);
    if (!dev) return make_error(dev.error().code(), "--fs vhost-user={}: {}", fs.vhost_user, dev.error().message());
    TRY(d->add(std::move(*dev), "vhost-user-fs", mem, mmio, ioevents));
  }
  for (size_t i = 0; i < v.nets.size(); ++i) TRY(d->add_net(v.nets[i], unsigned(i), mem, mmio, ioevents));
  if (!v.console_vhost_user.empty()) {
    auto dev = vhost::UserDevice::connect(
        {.type = virtio::DeviceType::Console, .fs_tag = {}, .mac = {}, .timeout_ms = kVhostUserTimeoutMs},
        v.console_vhost_user);
    if (!dev) return make_error(dev.error().code(), "--console vhost-user={}: {}", v.console_vhost_user, dev.error().message());
    TRY(d->add(std::move(*dev), "vhost-user-console", mem, mmio, ioevents));
  } else if (v.console) {
    d->console_ = TRY(virtio::ConsoleDevice::create([&out](std::span<const uint8_t> b) { out.write(b); }));
    TRY(d->add(d->console_, "console", mem, mmio, ioevents));
  }
  if (v.rng) TRY(d->add(TRY(virtio::RngDevice::create({})), "rng", mem, mmio, ioevents));
  return d;
}

VirtioDevices::~VirtioDevices() {
  for (auto& s : slots_) (void)platform_.event_loop().remove(s.id);
  // Now no device code runs: the input may go (its feeder only ever calls push_input).
  console_in_.reset();
}

// The backend's fd is opened here, on the main thread: the device thread may not open anything.
Result<void> VirtioDevices::add_net(const NetConfig& n, unsigned index, const GuestMemory& mem, IoBus& mmio,
                                    IoEventRegistry& ioevents) {
  const auto mac = n.mac.value_or(virtio::derived_mac(index));
  if (n.backend == NetConfig::Backend::VhostUser) {
    auto dev = vhost::UserDevice::connect(
        {.type = virtio::DeviceType::Net, .fs_tag = {}, .mac = mac, .timeout_ms = kVhostUserTimeoutMs}, n.target);
    if (!dev) return make_error(dev.error().code(), "--net vhost-user={}: {}", n.target, dev.error().message());
    return add(std::move(*dev), fmt::format("vhost-user-net{}", index), mem, mmio, ioevents);
  }
  auto backend = n.backend == NetConfig::Backend::Tap ? virtio::NetBackend::open_tap(n.target)
                                                      : virtio::NetBackend::connect_socket(n.target);
  if (!backend) return make_error(backend.error().code(), "--net: {}", backend.error().message());
  auto dev = virtio::NetDevice::create(std::move(*backend), mac);
  nets_.push_back(dev);
  return add(std::move(dev), fmt::format("net{}", index), mem, mmio, ioevents);
}

Result<void> VirtioDevices::attach_console_input(int fd) {
  if (!console_) return make_error(ENODEV, "no virtio console to feed");
  auto dev = console_;
  console_in_ = TRY(ConsoleInput::attach(platform_.event_loop(), fd, [dev](std::span<const uint8_t> b) {
    return dev->push_input(b);
  }));
  console_->set_space_callback([p = console_in_.get()] { p->notify_space(); });
  return {};
}

Result<void> VirtioDevices::add(std::shared_ptr<virtio::VirtioDevice> dev, std::string name, const GuestMemory& mem,
                                IoBus& mmio, IoEventRegistry& ioevents) {
  const size_t i = slots_.size();
  const uint64_t base = kVirtioMmioBase + i * kVirtioMmioStride;
  const uint32_t gsi = kVirtioGsis[i];
  // Edge: the transport raises one interrupt per batch of used buffers and the driver reads
  // InterruptStatus to see why, as on Firecracker's and QEMU's microvm virtio-mmio.
  auto irq = TRY(platform_.interrupt_line(gsi, EventFdInterruptLine::Mode::Edge));
  auto t = TRY(virtio::MmioTransport::create(std::move(dev), mem, ioevents, base, std::move(irq)));
  TRY(mmio.insert(base, virtio::MmioTransport::kWindow, t, "virtio-" + name));
  auto id = TRY(platform_.event_loop().add(t));
  slots_.push_back({std::move(name), gsi, std::move(t), id});
  LOG_INFO("virtio-{} at {:#x}, GSI {}", slots_.back().name, base, gsi);
  return {};
}

std::vector<VirtioMmioDesc> VirtioDevices::describe() const {
  std::vector<VirtioMmioDesc> out;
  for (const auto& s : slots_)
    out.push_back({s.transport->base(), uint32_t(virtio::MmioTransport::kWindow), s.gsi, !cfg_.virtio.cmdline_entries});
  return out;
}

std::string VirtioDevices::cmdline() const {
  std::string out;
  if (!cfg_.virtio.cmdline_entries) return out;
  for (const auto& s : slots_) {
    if (!out.empty()) out += ' ';
    out += virtio::cmdline_entry(s.transport->base(), s.gsi);
  }
  return out;
}

std::string VirtioDevices::stats() const {
  std::string out;
  for (const auto& s : slots_) {
    const auto& t = s.transport->stats();
    out += fmt::format(" virtio-{}:interrupts={},queue_faults={},bad_accesses={},needs_reset={}", s.name,
                       t.interrupts.load(), s.transport->queue_faults(), t.bad_accesses.load(), t.needs_reset.load());
    // Each refusal kind the queues counted, by name, so a test can tell which check fired.
    for (size_t f = 0; f < virtio::kQueueFaultCount; ++f)
      if (uint64_t n = s.transport->queue_fault(static_cast<virtio::QueueFault>(f)))
        out += fmt::format(",fault[{}]={}", virtio::to_string(static_cast<virtio::QueueFault>(f)), n);
    if (const auto* blk = dynamic_cast<const virtio::BlkDevice*>(&s.transport->device())) {
      const auto& m = blk->metrics();
      out += fmt::format(",requests={},refused={},host_errors={}", m.requests.load(), m.total_faults(), m.host_errors.load());
    }
  }
  for (size_t i = 0; i < nets_.size(); ++i) {
    const auto& m = nets_[i]->metrics();
    out += fmt::format(" net{}:rx_frames={},tx_frames={},rx_dropped={},guest_errors={},backend_errors={}", i,
                       m.rx_frames.load(), m.tx_frames.load(), m.rx_too_big.load() + m.rx_runts.load(), m.guest_errors(),
                       m.rx_backend_errors.load() + m.tx_backend_errors.load());
  }
  if (console_) {
    const auto& m = console_->metrics();
    out += fmt::format(" console:tx_bytes={},rx_bytes={},bad_chains={}", m.tx_bytes.load(), m.rx_bytes.load(),
                       m.bad_chains.load());
  }
  return out;
}

}  // namespace evmm
