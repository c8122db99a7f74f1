#include "devices/doorbell.h"

#include <sys/epoll.h>

#include <cstring>

#include "base/log.h"
#include "memory/layout.h"

namespace evmm {

Result<std::shared_ptr<Doorbell>> Doorbell::create(IoEventRegistry& registry, InterruptLine& irq) {
  auto pio = std::make_shared<EventFd>(TRY(EventFd::create()));
  auto mmio = std::make_shared<EventFd>(TRY(EventFd::create()));
  std::shared_ptr<Doorbell> d(new Doorbell(irq, pio, mmio));
  d->pio_reg_ = TRY(registry.add(IoSpace::Pio, platform::kDoorbellPort, 4, IoMatch::any(), pio));
  d->mmio_reg_ = TRY(registry.add(IoSpace::Mmio, platform::kDoorbellMmio, 4, IoMatch::any(), mmio));
  return d;
}

void Doorbell::answer(std::atomic<uint64_t>& counter, uint64_t rings) {
  // Each ring gets its own edge; the guest waits for one before it rings again.
  for (uint64_t i = 0; i < rings; ++i) {
    counter.fetch_add(1, std::memory_order_relaxed);
    irq_.trigger();
  }
}

void Doorbell::read(const BusRead& io) {
  if (io.offset != 0 || io.data.size() != 4) {
    stats_.bad_accesses.fetch_add(1, std::memory_order_relaxed);
    std::memset(io.data.data(), 0xff, io.data.size());
    return;
  }
  uint32_t n = static_cast<uint32_t>(answered());
  std::memcpy(io.data.data(), &n, 4);
}

void Doorbell::write(const BusWrite& io) {
  if (io.offset != 0 || io.data.size() != 4) {
    stats_.bad_accesses.fetch_add(1, std::memory_order_relaxed);
    return;
  }
  LOG_DEBUG("doorbell: a write bypassed the ioeventfd registry; answering it directly");
  answer(stats_.pio_rings, 1);
}

void Doorbell::init(EventOps& ops) {
  // The token says which doorbell rang: 1 for the port, 0 for MMIO.
  for (bool pio : {true, false})
    if (auto r = ops.add((pio ? pio_fd_ : mmio_fd_)->fd(), EPOLLIN, pio); !r) LOG_ERROR("doorbell: {}", r.error().message());
}

void Doorbell::process(const Event& ev, EventOps&) {
  bool pio = ev.token == 1;
  auto rings = (pio ? pio_fd_ : mmio_fd_)->consume();
  if (!rings) {
    LOG_WARN("doorbell: {}", rings.error().message());
    return;
  }
  answer(pio ? stats_.pio_rings : stats_.mmio_rings, *rings);
}

}  // namespace evmm
