// evmm's doorbell: a paravirtual device that shows the event plane end to end.
//
// A guest write (4 bytes, any value) to the PIO doorbell (platform::kDoorbellPort) or the MMIO
// doorbell (platform::kDoorbellMmio) signals an eventfd through an ioeventfd: in the kernel when
// KVM accepts it, so the vCPU never leaves for userspace, and through the registry's userspace
// dispatch otherwise. The device waits on those eventfds on the event loop and answers each ring
// with one edge on its interrupt line (GSI platform::kDoorbellGsi, an irqfd). A 4-byte read at
// either doorbell returns how many rings have been answered; reads always reach the device.
#pragma once

#include <atomic>
#include <memory>

#include "base/eventfd.h"
#include "base/result.h"
#include "bus/io_bus.h"
#include "event/event_loop.h"
#include "event/interrupt_line.h"
#include "event/io_event_registry.h"

namespace evmm {

struct DoorbellStats {
  std::atomic<uint64_t> pio_rings{0};
  std::atomic<uint64_t> mmio_rings{0};
  std::atomic<uint64_t> bad_accesses{0};
};

class Doorbell final : public BusDevice, public EventSubscriber {
 public:
  static constexpr uint64_t kRangeLen = 4;

  // Registers both doorbells with the registry; the device must then join an event loop.
  static Result<std::shared_ptr<Doorbell>> create(IoEventRegistry& registry, InterruptLine& irq);

  void read(const BusRead& io) override;
  // Only a write the registry did not take gets here (it never should): answered all the same.
  void write(const BusWrite& io) override;
  void init(EventOps& ops) override;
  void process(const Event& event, EventOps& ops) override;

  uint64_t answered() const { return stats_.pio_rings.load() + stats_.mmio_rings.load(); }
  const DoorbellStats& stats() const { return stats_; }

 private:
  Doorbell(InterruptLine& irq, std::shared_ptr<EventFd> pio, std::shared_ptr<EventFd> mmio)
      : irq_(irq), pio_fd_(std::move(pio)), mmio_fd_(std::move(mmio)) {}
  void answer(std::atomic<uint64_t>& counter, uint64_t rings);

  InterruptLine& irq_;
  std::shared_ptr<EventFd> pio_fd_, mmio_fd_;
  IoEventRegistration pio_reg_, mmio_reg_;
  DoorbellStats stats_;
};

}  // namespace evmm
