// virtio-net's queue handler: the receive and transmit paths on the device event loop (net.h).
#include "devices/virtio/net/net_abi.h"

#include <algorithm>
#include <climits>
#include <cstring>

#include "base/log.h"
#include "devices/virtio/net/net.h"

namespace evmm::virtio {

namespace {

// The first of each kind is worth a line; a guest or peer repeating it is not worth a flood.
void warn_once(std::atomic<uint64_t>& counter, std::string_view what, int err = 0) {
  if (counter.fetch_add(1, std::memory_order_relaxed) == 0)
    LOG_WARN("virtio-net: {}{}{} (counted; further ones are not logged)", what, err ? ": " : "",
             err ? std::strerror(err) : "");
}

}  // namespace

// Pops one receive chain onto rx_chains_; false when the guest has none posted. Chains the device
// cannot write a header into are handed back empty.
bool NetDevice::pop_rx_chain(bool& added) {
  for (;;) {
    DescriptorChain& c = rx_chains_.emplace_back();
    switch (rx_->pop(c)) {
      case Virtqueue::Pop::Chain: break;
      case Virtqueue::Pop::Broken:
        rx_chains_.pop_back();
        signals_->needs_reset("receive queue: the available index jumped");
        return false;
      case Virtqueue::Pop::Empty:
        rx_chains_.pop_back();
        return false;
    }
    // §5.1.6.3: receive buffers are device-writable, and each can hold at least the header.
    if (c.readable == 0 && c.writable_bytes >= kHeaderLen) return true;
    warn_once(metrics_.rx_bad_chains, "a receive chain with readable buffers or shorter than the header");
    rx_->add_used(c.head, 0);
    added = true;
    rx_chains_.pop_back();
  }
}

// Writes frame_[0, len) behind a header into the first `count` receive chains and returns them.
void NetDevice::write_chains(size_t count, size_t len) {
  virtio_net_hdr_v1 hdr{};
  hdr.num_buffers = uint16_t(count);  // §5.1.6.4: 1 when MRG_RXBUF is off
  // SAFETY: hdr is a trivially copyable local of kHeaderLen bytes.
  auto header = std::span(reinterpret_cast<const uint8_t*>(&hdr), kHeaderLen);
  auto frame = std::span<const uint8_t>(frame_.data(), len);
  for (size_t i = 0; i < count; ++i) {
    const DescriptorChain& c = rx_chains_.front();
    uint32_t written = 0;
    for (size_t k = c.readable; k < c.descs.size(); ++k) {
      const Descriptor& d = c.descs[k];
      for (uint32_t off = 0; off < d.len && (!header.empty() || !frame.empty());) {
        auto& src = header.empty() ? frame : header;
        size_t n = std::min<size_t>(src.size(), d.len - off);
        if (!mem_->write(d.addr + off, src.first(n))) metrics_.memory_errors.fetch_add(1, std::memory_order_relaxed);
        src = src.subspan(n);
        off += uint32_t(n);
        written += uint32_t(n);
      }
    }
    rx_->add_used(c.head, written);
    rx_chains_.pop_front();
  }
}

NetDevice::Deliver NetDevice::deliver(size_t len, bool& added) {
  const uint64_t need = kHeaderLen + len;
  uint64_t room = 0;
  size_t count = 0;
  while (room < need && (mrg_ || count == 0)) {
    if (count == rx_chains_.size() && !pop_rx_chain(added)) break;
    room += rx_chains_[count++].writable_bytes;
  }
  if (room >= need) {
    write_chains(count, len);
    metrics_.rx_frames.fetch_add(1, std::memory_order_relaxed);
    metrics_.rx_bytes.fetch_add(len, std::memory_order_relaxed);
    added = true;
    return Deliver::Done;
  }
  // Too small for good: one chain without MRG_RXBUF, or every buffer the ring can hold with it.
  if (count > 0 && (!mrg_ || rx_chains_.size() >= rx_->layout().size)) {
    warn_once(metrics_.rx_too_big, "a received frame larger than the guest's receive buffers was dropped");
    return Deliver::Dropped;
  }
  return Deliver::NeedBuffers;
}

void NetDevice::process_rx() {
  if (!rx_ || !rx_->ready()) return;
  bool added = false;
  for (;;) {
    if (frame_len_ == 0) {
      // Read only with a buffer to put the frame in: otherwise it waits in the backend.
      if (rx_chains_.empty() && !pop_rx_chain(added)) break;
      ssize_t n = backend_.recv(frame_);
      if (n == -EAGAIN) break;  // the next edge resumes
      if (n < 0) {
        warn_once(metrics_.rx_backend_errors, "receiving from the backend", int(-n));
        // A socket's pending error is consumed by the read; any other error would repeat at once.
        if (n == -ECONNREFUSED || n == -ECONNRESET) continue;
        break;
      }
      if (size_t(n) < kEthHeaderLen) {
        warn_once(metrics_.rx_runts, "a frame shorter than an Ethernet header from the backend was dropped");
        continue;
      }
      if (size_t(n) > kMaxFrame) {
        warn_once(metrics_.rx_too_big, "a frame larger than the device takes was dropped");
        continue;
      }
      frame_len_ = size_t(n);
    }
    Deliver r = deliver(frame_len_, added);
    if (r == Deliver::NeedBuffers) {
      metrics_.rx_waits.fetch_add(1, std::memory_order_relaxed);
      break;
    }
    frame_len_ = 0;
  }
  if (added) signals_->used(kRxQueue);
}

void NetDevice::tx_fault(TxFault f) {
  auto& counter = metrics_.tx_faults[static_cast<size_t>(f)];
  if (counter.fetch_add(1, std::memory_order_relaxed) == 0)
    LOG_WARN("virtio-net: refused a transmit chain: {} (counted; further ones are not logged)", to_string(f));
}

ssize_t NetDevice::send_pending() {
  if (tx_iov_.size() <= IOV_MAX) return backend_.send(tx_iov_);
  // More pieces than one writev takes (a long indirect chain): one copy into a flat buffer.
  tx_linear_.clear();
  for (const iovec& v : tx_iov_) {
    auto p = static_cast<const uint8_t*>(v.iov_base);
    tx_linear_.insert(tx_linear_.end(), p, p + v.iov_len);
  }
  iovec flat{tx_linear_.data(), tx_linear_.size()};
  return backend_.send({&flat, 1});
}

void NetDevice::process_tx() {
  if (!tx_ || !tx_->ready()) return;
  bool added = false;
  for (;;) {
    if (!tx_pending_) {
      auto p = tx_->pop(tx_chain_);
      if (p == Virtqueue::Pop::Broken) signals_->needs_reset("transmit queue: the available index jumped");
      if (p != Virtqueue::Pop::Chain) break;
      if (auto fault = parse_tx(*mem_, tx_chain_, tx_iov_)) {
        tx_fault(*fault);
        tx_->add_used(tx_chain_.head, 0);
        added = true;
        continue;
      }
      tx_pending_ = true;
    }
    ssize_t n = send_pending();
    if (n == -EAGAIN) {
      // The backend is full: the chain waits for its EPOLLOUT edge (net.h).
      metrics_.tx_blocked.fetch_add(1, std::memory_order_relaxed);
      break;
    }
    if (n < 0) {
      warn_once(metrics_.tx_backend_errors, "the backend refused a frame, dropped", int(-n));
    } else {
      metrics_.tx_frames.fetch_add(1, std::memory_order_relaxed);
      metrics_.tx_bytes.fetch_add(uint64_t(n), std::memory_order_relaxed);
    }
    // §5.1.6.2: the device writes nothing into a transmit chain.
    tx_->add_used(tx_chain_.head, 0);
    tx_pending_ = false;
    added = true;
  }
  if (added) signals_->used(kTxQueue);
}

}  // namespace evmm::virtio
