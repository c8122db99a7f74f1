// The virtio-mmio transport, version 2 (virtio 1.2 §4.2): one 512-byte register window and one
// interrupt line per device.
//
// Rules:
//   - Registers are 32-bit accesses at 4-byte aligned offsets (§4.2.2.2); config space (0x100 on)
//     takes any size the device allows. Anything else is counted and ignored (reads return 0).
//   - Negotiation (§3.1.1): FEATURES_OK sticks only for a subset of the offered features that has
//     VIRTIO_F_VERSION_1 (this is a modern-only device); DRIVER_OK activates the device. Status bits
//     are only ever added; writing 0 resets the device, its queues and the interrupt status.
//   - A queue's notification is the driver's write of its index to QueueNotify: one ioeventfd per
//     queue with that value as datamatch, so KVM signals the queue's eventfd and the vCPU does not
//     leave the kernel. The transport waits on those eventfds on the device event loop. A write that
//     still reaches the bus names no queue: counted. A device whose queues another process serves
//     (vhost-user) takes the eventfds instead, and the kick goes straight to that process.
//   - Interrupts leave through the line given (an irqfd): bit 0 of InterruptStatus for used
//     buffers, bit 1 for a config change, acknowledged by InterruptACK.
//   - A device that cannot go on, a queue whose layout is refused or whose ring breaks, sets
//     DEVICE_NEEDS_RESET with a config interrupt (§2.1.2); the VM runs on.
//
// Threads: registers are accessed from vCPU threads, queues served on the event-loop thread; one
// mutex orders them, so a reset never races a request in progress.
#pragma once

#include <atomic>
#include <memory>
#include <mutex>
#include <span>
#include <string>
#include <vector>

#include "base/eventfd.h"
#include "bus/io_bus.h"
#include "devices/virtio/device.h"
#include "event/event_loop.h"
#include "event/interrupt_line.h"
#include "event/io_event_registry.h"

namespace evmm::virtio {

struct TransportStats {
  std::atomic<uint64_t> bad_accesses{0};      // wrong size or alignment, unknown or read-only register
  std::atomic<uint64_t> bad_notifies{0};      // QueueNotify writes naming no queue
  std::atomic<uint64_t> refused_features{0};  // FEATURES_OK refused
  std::atomic<uint64_t> needs_reset{0};       // times DEVICE_NEEDS_RESET was set
  std::atomic<uint64_t> resets{0};
  std::atomic<uint64_t> interrupts{0};
};

class MmioTransport final : public BusDevice, public EventSubscriber, private VirtioSignals {
 public:
  static constexpr uint64_t kWindow = 0x200;
  static constexpr uint32_t kMagic = 0x74726976;     // "virt"
  static constexpr uint32_t kVendor = 0x4d4d5645;    // "EVMM"

  // Registers the queues' ioeventfds at base; the transport must then join an event loop, and be
  // inserted on the MMIO bus at base. mem and irq must outlive it.
  static Result<std::shared_ptr<MmioTransport>> create(std::shared_ptr<VirtioDevice> device, const GuestMemory& mem,
                                                       IoEventRegistry& ioevents, uint64_t base,
                                                       std::shared_ptr<InterruptLine> irq);
  ~MmioTransport() override;

  void read(const BusRead& io) override;
  void write(const BusWrite& io) override;
  void init(EventOps& ops) override;
  void process(const Event& event, EventOps& ops) override;

  uint64_t base() const { return base_; }
  uint32_t status() const;
  uint64_t driver_features() const;
  VirtioDevice& device() { return *device_; }
  const TransportStats& stats() const { return stats_; }
  // Totals over the queues (QueueStats::total_faults and chains), for --stats.
  uint64_t queue_faults() const;
  uint64_t queue_fault(QueueFault f) const;

 private:
  MmioTransport(std::shared_ptr<VirtioDevice> device, const GuestMemory& mem, uint64_t base,
                std::shared_ptr<InterruptLine> irq);

  uint32_t read_register(uint64_t offset);
  void write_register(uint64_t offset, uint32_t value);
  void write_status(uint32_t value);
  void write_queue_ready(uint32_t value);
  Virtqueue* selected();
  void reset_locked();
  void interrupt(uint32_t bits);
  // VirtioSignals, called by the device with mu_ held (from notify/process_event/activate).
  void used(uint16_t q) override;
  void config_changed() override;
  void needs_reset(std::string_view why) override;

  std::shared_ptr<VirtioDevice> device_;
  const GuestMemory& mem_;
  const uint64_t base_;
  std::shared_ptr<InterruptLine> irq_;
  std::vector<std::shared_ptr<EventFd>> notify_fds_;
  std::vector<IoEventRegistration> notify_regs_;

  mutable std::mutex mu_;
  std::unique_ptr<Virtqueue[]> queue_storage_;  // queues hold atomics: made once, never moved
  std::span<Virtqueue> queues_;
  uint32_t status_ = 0;
  uint32_t device_features_sel_ = 0;
  uint32_t driver_features_sel_ = 0;
  uint64_t driver_features_ = 0;
  uint32_t queue_sel_ = 0;
  bool active_ = false;
  std::atomic<uint32_t> interrupt_status_{0};
  std::atomic<uint32_t> config_generation_{0};
  TransportStats stats_;
};

// The kernel command-line entry Linux's virtio_mmio driver takes for a device
// ("virtio_mmio.device=512@0xd0001000:5", drivers/virtio/virtio_mmio.c).
std::string cmdline_entry(uint64_t base, uint32_t gsi);

}  // namespace evmm::virtio
