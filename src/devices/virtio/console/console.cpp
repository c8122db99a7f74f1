#include "devices/virtio/console/console.h"

#include "devices/virtio/virtio_abi.h"

#include <sys/epoll.h>

#include <algorithm>
#include <array>

#include "base/log.h"

namespace evmm::virtio {

Result<std::shared_ptr<ConsoleDevice>> ConsoleDevice::create(ByteSink sink) {
  auto kick = TRY(EventFd::create());
  return std::shared_ptr<ConsoleDevice>(new ConsoleDevice(std::move(sink), std::move(kick)));
}

uint64_t ConsoleDevice::features() const {
  return (1ull << VIRTIO_RING_F_EVENT_IDX) | (1ull << VIRTIO_RING_F_INDIRECT_DESC);
}

size_t ConsoleDevice::push_input(std::span<const uint8_t> bytes) {
  size_t n;
  {
    std::lock_guard lock(in_mu_);
    n = std::min(bytes.size(), kInputBuffer - in_.size());
    in_.insert(in_.end(), bytes.begin(), bytes.begin() + ptrdiff_t(n));
    if (n < bytes.size()) {
      refused_ = true;
      metrics_.input_full.fetch_add(1, std::memory_order_relaxed);
    }
  }
  if (n > 0) (void)kick_.signal();
  return n;
}

void ConsoleDevice::set_space_callback(std::function<void()> cb) {
  std::lock_guard lock(in_mu_);
  space_cb_ = std::move(cb);
}

Result<void> ConsoleDevice::activate(const GuestMemory& mem, std::span<Virtqueue> queues, uint64_t, VirtioSignals& signals) {
  mem_ = &mem;
  rx_ = &queues[kRxQueue];
  tx_ = &queues[kTxQueue];
  signals_ = &signals;
  return {};
}

// Buffered input stays for the next driver: it is the user's typing, not the old driver's state.
void ConsoleDevice::reset() {
  mem_ = nullptr;
  rx_ = tx_ = nullptr;
  signals_ = nullptr;
}

void ConsoleDevice::notify(uint16_t q) {
  if (q == kRxQueue) process_rx();
  else if (q == kTxQueue) process_tx();
}

void ConsoleDevice::init_events(EventOps& ops) {
  if (auto r = ops.add(kick_.fd(), EPOLLIN, 0); !r) LOG_ERROR("virtio-console: {}", r.error().message());
}

void ConsoleDevice::process_event(const Event&, EventOps&) {
  (void)kick_.consume();
  process_rx();
}

void ConsoleDevice::process_tx() {
  if (!tx_ || !tx_->ready()) return;
  bool added = false;
  std::array<uint8_t, 4096> buf;
  for (;;) {
    auto p = tx_->pop(chain_);
    if (p == Virtqueue::Pop::Broken) signals_->needs_reset("transmit queue: the available index jumped");
    if (p != Virtqueue::Pop::Chain) break;
    // §5.3.6.1: transmit buffers are device-readable only.
    if (chain_.readable != chain_.descs.size()) {
      metrics_.bad_chains.fetch_add(1, std::memory_order_relaxed);
    } else {
      for (const Descriptor& d : chain_.descs) {
        for (uint32_t off = 0; off < d.len;) {
          size_t n = std::min<size_t>(buf.size(), d.len - off);
          if (!mem_->read(d.addr + off, std::span(buf.data(), n))) {
            metrics_.memory_errors.fetch_add(1, std::memory_order_relaxed);
            break;
          }
          sink_(std::span<const uint8_t>(buf.data(), n));
          metrics_.tx_bytes.fetch_add(n, std::memory_order_relaxed);
          off += uint32_t(n);
        }
      }
    }
    tx_->add_used(chain_.head, 0);
    added = true;
  }
  if (added) signals_->used(kTxQueue);
}

void ConsoleDevice::process_rx() {
  if (!rx_ || !rx_->ready()) return;
  bool added = false, drained = false;
  std::function<void()> cb;
  {
    std::lock_guard lock(in_mu_);
    while (!in_.empty()) {
      auto p = rx_->pop(chain_);
      if (p == Virtqueue::Pop::Broken) signals_->needs_reset("receive queue: the available index jumped");
      if (p != Virtqueue::Pop::Chain) break;
      added = true;
      // §5.3.6.1: receive buffers are device-writable only.
      if (chain_.readable != 0) {
        metrics_.bad_chains.fetch_add(1, std::memory_order_relaxed);
        rx_->add_used(chain_.head, 0);
        continue;
      }
      size_t done = 0;
      for (const Descriptor& d : chain_.descs) {
        size_t n = std::min<size_t>(d.len, in_.size() - done);
        if (n == 0) break;
        if (!mem_->write(d.addr, std::span<const uint8_t>(in_.data() + done, n))) {
          metrics_.memory_errors.fetch_add(1, std::memory_order_relaxed);
          break;
        }
        done += n;
      }
      in_.erase(in_.begin(), in_.begin() + ptrdiff_t(done));
      metrics_.rx_bytes.fetch_add(done, std::memory_order_relaxed);
      rx_->add_used(chain_.head, uint32_t(done));
    }
    if (in_.empty() && refused_) {
      refused_ = false;
      drained = true;
      cb = space_cb_;
    }
  }
  if (added) signals_->used(kRxQueue);
  if (drained && cb) cb();
}

}  // namespace evmm::virtio
