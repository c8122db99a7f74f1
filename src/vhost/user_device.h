// A virtio device whose queues another process serves over vhost-user (`--disk vhost-user=SOCKET`,
// `--fs vhost-user=SOCKET,tag=TAG`, `--net vhost-user=SOCKET[,mac=MAC]`, `--console vhost-user=SOCKET`):
// evmm keeps the virtio-mmio transport (registers, negotiation, the interrupt line) and hands the
// data path to the backend. The guest's QueueNotify ioeventfd is the backend's kick fd, so a kick
// goes from KVM to the backend with no evmm thread; the backend's call fd is read on the device loop,
// which raises the line (virtio-mmio has one interrupt per device and an InterruptStatus the driver
// reads first, so a call cannot be an irqfd by itself).
//
// The backend learns the guest's memory as the memfd and offsets evmm maps, with "user addresses"
// equal to guest addresses: it needs a consistent name for each byte, not evmm's own mappings.
//
// A backend that breaks (a bad or missing reply, a nack, a disconnect) sets DEVICE_NEEDS_RESET; the
// VM runs on, and the device stays broken until evmm restarts (no reconnect yet).
//
// Threads: activate() and reset() run on the vCPU thread that wrote the status register and wait
// for the backend's replies (each within the frontend's timeout), as QEMU's do; the dirty-log calls
// on whichever thread collects the rounds. One request is on the connection at a time.
#pragma once

#include <array>
#include <memory>
#include <mutex>
#include <string>
#include <vector>

#include "base/eventfd.h"
#include "devices/virtio/device.h"
#include "memory/page_log.h"
#include "vhost/frontend.h"

namespace evmm::vhost {

// What the frontend is asked to be.
struct UserDeviceConfig {
  virtio::DeviceType type = virtio::DeviceType::Block;
  // virtio-fs: the tag the guest mounts (1 to 36 bytes, virtio 1.2 §5.11.4). The backends of the
  // day (QEMU's and the Rust virtiofsd) have no config space: the frontend makes it, as QEMU's does.
  std::string fs_tag;
  // virtio-net: the MAC address the guest sees. The frontend owns the config space (MAC and the
  // link status), as QEMU's vhost-user-net does: a backend only moves frames.
  std::array<uint8_t, 6> mac{};
  int timeout_ms = 5000;
};

class UserDevice final : public virtio::VirtioDevice {
 public:
  // Connects to the backend at path and negotiates; for a block device reads its config space.
  // EOPNOTSUPP for a device type evmm does not drive (rng: a frontend gains nothing from one), EINVAL
  // for a bad fs tag or a multicast MAC.
  static Result<std::shared_ptr<UserDevice>> connect(const UserDeviceConfig& cfg, const std::string& path);
  // The same over a connected socket (tests).
  static Result<std::shared_ptr<UserDevice>> over(const UserDeviceConfig& cfg, UniqueFd sock);

  virtio::DeviceType type() const override { return type_; }
  uint64_t features() const override { return features_; }
  std::span<const uint16_t> queue_sizes() const override { return sizes_; }
  void read_config(uint64_t offset, std::span<uint8_t> data) const override;
  Result<void> activate(const GuestMemory& mem, std::span<virtio::Virtqueue> queues, uint64_t features,
                        virtio::VirtioSignals& signals) override;
  void reset() override;
  void notify(uint16_t q) override;
  bool takes_notifications() const override { return true; }
  void take_notifications(std::span<const int> fds) override { kicks_.assign(fds.begin(), fds.end()); }
  void init_events(EventOps& ops) override;
  void process_event(const Event& event, EventOps& ops) override;

  // Dirty logging, for a migration or snapshot: the backend marks each guest page it writes in log
  // (a PageLog::create() covering guest memory, which the caller takes rounds from) until
  // stop_dirty_log(); it stays on across a device reset. EOPNOTSUPP when the backend cannot log;
  // a broken connection's errors otherwise. Any thread.
  Result<void> start_dirty_log(const PageLog& log);
  Result<void> stop_dirty_log();

  const Frontend& frontend() const { return *fe_; }
  uint64_t calls() const { return calls_; }

 private:
  UserDevice(virtio::DeviceType type, std::unique_ptr<Frontend> fe) : type_(type), fe_(std::move(fe)) {}
  Result<void> setup(const UserDeviceConfig& cfg);

  const virtio::DeviceType type_;
  std::mutex fe_mu_;  // one request and its reply at a time: vCPU threads (activate, reset) and a migration's
  std::unique_ptr<Frontend> fe_;
  bool logging_ = false;  // fe_mu_: LOG_ALL is kept in what activate() sets
  uint64_t features_ = 0;
  uint64_t own_features_ = 0;  // offered to the guest by evmm itself (config-space features), not the backend
  std::vector<uint16_t> sizes_;
  std::vector<uint8_t> config_;
  std::vector<int> kicks_;        // the transport's notify eventfds, one per queue
  std::vector<EventFd> call_fds_;  // one per queue
  std::vector<bool> started_;
  virtio::VirtioSignals* signals_ = nullptr;
  uint64_t calls_ = 0;
};

}  // namespace evmm::vhost
