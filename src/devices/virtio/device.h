// What a virtio device implements, whatever carries it (the MMIO transport today; a vhost-user
// backend later): identity, features, config space, and request handling on its queues.
//
// Rules:
//   - The transport owns the queues and the negotiation; a device sees its queues only between
//     activate() and reset(), and only on the thread the transport calls it on (the device event
//     loop), under the transport's lock. A device never blocks that thread.
//   - Guest mistakes in a request are the device's to count and answer (a status byte, a short
//     used length); they never fail the device. A device that cannot go on (its backend broke, its
//     queue state is gone) calls VirtioSignals::needs_reset().
//   - A device's own fds (a tap, a console input, an io_uring) are registered through the EventOps
//     it is given; their tokens are the device's own.
#pragma once

#include <cstdint>
#include <span>
#include <string_view>

#include "event/event_loop.h"
#include "devices/virtio/queue.h"
#include "memory/guest_memory.h"

namespace evmm::virtio {

// Device IDs (virtio 1.2 §5).
enum class DeviceType : uint32_t { Net = 1, Block = 2, Console = 3, Rng = 4, Fs = 26 };
std::string_view to_string(DeviceType t);

// What the transport gives a device to talk back to the driver.
class VirtioSignals {
 public:
  virtual ~VirtioSignals() = default;
  // Used entries were added to queue q: interrupt the driver unless it suppressed it.
  virtual void used(uint16_t q) = 0;
  // The device's config space changed (bumps the config generation, raises a config interrupt).
  virtual void config_changed() = 0;
  // The device cannot go on: DEVICE_NEEDS_RESET and a config interrupt (§2.1.2); logged with why.
  virtual void needs_reset(std::string_view why) = 0;
};

class VirtioDevice {
 public:
  virtual ~VirtioDevice() = default;
  virtual DeviceType type() const = 0;
  // Device-specific and ring features offered (VERSION_1 is the transport's to add).
  virtual uint64_t features() const = 0;
  // One entry per queue: its maximum size.
  virtual std::span<const uint16_t> queue_sizes() const = 0;
  // Config space (§4.2.2 offset 0x100 on): out-of-range bytes read as zero and writes are dropped.
  virtual void read_config(uint64_t offset, std::span<uint8_t> data) const = 0;
  virtual void write_config(uint64_t offset, std::span<const uint8_t> data) { (void)offset, (void)data; }

  // DRIVER_OK: the driver negotiated `features` and made the queues ready (some may not be).
  // An error sets DEVICE_NEEDS_RESET.
  virtual Result<void> activate(const GuestMemory& mem, std::span<Virtqueue> queues, uint64_t features,
                                VirtioSignals& signals) = 0;
  // Device reset (status 0): drop every reference to the queues and memory; in-flight work that
  // completes later must not touch them.
  virtual void reset() = 0;
  // The driver notified queue q (after activate).
  virtual void notify(uint16_t q) = 0;

  // A device whose queues another process serves (vhost-user) takes the queues' notify eventfds,
  // given once before the transport joins its event loop: the transport then does not wait on
  // them, and its used() raises the interrupt as told (the other process applied the driver's
  // suppression already).
  virtual bool takes_notifications() const { return false; }
  virtual void take_notifications(std::span<const int> fds) { (void)fds; }

  // The device's own fds: registered once when the transport joins the event loop.
  virtual void init_events(EventOps& ops) { (void)ops; }
  virtual void process_event(const Event& event, EventOps& ops) { (void)event, (void)ops; }
};

}  // namespace evmm::virtio
