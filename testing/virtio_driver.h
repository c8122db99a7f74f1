// A virtio-mmio driver for unit tests, in the host: it lays out split rings in a GuestMemory, speaks
// to an MmioTransport through its registers, and notifies through an IoEventRegistry without a VM
// (the registry's userspace dispatch), the way a guest write would reach the ioeventfd. Everything
// a device test needs to put requests on a queue and read what the device answered, plus raw access
// to the rings so a test can write a malformed one.
#pragma once


#include <cstring>
#include <memory>
#include <optional>
#include <vector>

#include "bus/io_bus.h"
#include "devices/virtio/mmio_transport.h"
#include "devices/virtio/virtio_abi.h"
#include "event/event_loop.h"
#include "event/interrupt_line.h"
#include "event/io_event_registry.h"
#include "memory/guest_memory.h"

namespace evmm::testing {

// Counts interrupts instead of raising them.
class CountingLine final : public InterruptLine {
 public:
  void trigger() override { ++edges; }
  void set_level(bool) override { ++edges; }
  std::atomic<int> edges{0};
};

struct Buf {
  uint64_t addr;
  uint32_t len;
  bool writable;
};

class VirtioTestDriver {
 public:
  static constexpr uint64_t kBase = 0xd0001000;
  // Rings for queue q live at kRingArea + q * kRingStride: descriptors, then avail, then used.
  static constexpr uint64_t kRingArea = 0x100000;
  static constexpr uint64_t kRingStride = 0x10000;
  static constexpr uint16_t kQueueSize = 16;

  // A transport over dev on fresh memory of mem_bytes (RAM from 0), with its own loop and registry.
  explicit VirtioTestDriver(std::shared_ptr<virtio::VirtioDevice> dev, uint64_t mem_bytes = 16 << 20)
      : mem(*GuestMemory::create({{GuestAddress(0), mem_bytes}})), registry(nullptr), loop(*EventLoop::create()) {
    irq = std::make_shared<CountingLine>();
    transport = *virtio::MmioTransport::create(std::move(dev), mem, registry, kBase, irq);
    (void)loop->add(transport);
  }

  uint32_t reg(uint32_t off) {
    uint32_t v = 0;
    transport->read(BusRead{off, std::span(reinterpret_cast<uint8_t*>(&v), 4), 0});
    return v;
  }
  void set_reg(uint32_t off, uint32_t v) {
    transport->write(BusWrite{off, std::span(reinterpret_cast<const uint8_t*>(&v), 4), 0});
  }
  uint64_t device_features() {
    set_reg(VIRTIO_MMIO_DEVICE_FEATURES_SEL, 0);
    uint64_t lo = reg(VIRTIO_MMIO_DEVICE_FEATURES);
    set_reg(VIRTIO_MMIO_DEVICE_FEATURES_SEL, 1);
    return lo | (uint64_t(reg(VIRTIO_MMIO_DEVICE_FEATURES)) << 32);
  }

  uint64_t desc_addr(uint16_t q) const { return kRingArea + q * kRingStride; }
  uint64_t avail_addr(uint16_t q) const { return desc_addr(q) + 16 * kQueueSize; }
  uint64_t used_addr(uint16_t q) const { return desc_addr(q) + 0x1000; }

  // The status dance of §3.1.1 with `features` (VERSION_1 added), every queue set up with
  // kQueueSize entries. Returns the final status.
  uint32_t init(uint64_t features, uint16_t nqueues) {
    set_reg(VIRTIO_MMIO_STATUS, 0);
    set_reg(VIRTIO_MMIO_STATUS, VIRTIO_CONFIG_S_ACKNOWLEDGE);
    set_reg(VIRTIO_MMIO_STATUS, VIRTIO_CONFIG_S_ACKNOWLEDGE | VIRTIO_CONFIG_S_DRIVER);
    features |= 1ull << VIRTIO_F_VERSION_1;
    set_reg(VIRTIO_MMIO_DRIVER_FEATURES_SEL, 0);
    set_reg(VIRTIO_MMIO_DRIVER_FEATURES, uint32_t(features));
    set_reg(VIRTIO_MMIO_DRIVER_FEATURES_SEL, 1);
    set_reg(VIRTIO_MMIO_DRIVER_FEATURES, uint32_t(features >> 32));
    set_reg(VIRTIO_MMIO_STATUS, VIRTIO_CONFIG_S_ACKNOWLEDGE | VIRTIO_CONFIG_S_DRIVER | VIRTIO_CONFIG_S_FEATURES_OK);
    avail_idx_.assign(nqueues, 0);
    used_seen_.assign(nqueues, 0);
    next_desc_.assign(nqueues, 0);
    for (uint16_t q = 0; q < nqueues; ++q) {
      (void)mem.fill(GuestAddress(desc_addr(q)), 0, kRingStride);
      set_reg(VIRTIO_MMIO_QUEUE_SEL, q);
      set_reg(VIRTIO_MMIO_QUEUE_NUM, kQueueSize);
      set_reg(VIRTIO_MMIO_QUEUE_DESC_LOW, uint32_t(desc_addr(q)));
      set_reg(VIRTIO_MMIO_QUEUE_DESC_HIGH, 0);
      set_reg(VIRTIO_MMIO_QUEUE_AVAIL_LOW, uint32_t(avail_addr(q)));
      set_reg(VIRTIO_MMIO_QUEUE_AVAIL_HIGH, 0);
      set_reg(VIRTIO_MMIO_QUEUE_USED_LOW, uint32_t(used_addr(q)));
      set_reg(VIRTIO_MMIO_QUEUE_USED_HIGH, 0);
      set_reg(VIRTIO_MMIO_QUEUE_READY, 1);
    }
    set_reg(VIRTIO_MMIO_STATUS, reg(VIRTIO_MMIO_STATUS) | VIRTIO_CONFIG_S_DRIVER_OK);
    return reg(VIRTIO_MMIO_STATUS);
  }

  // Writes descriptor i of queue q as is: for malformed chains.
  void write_desc(uint16_t q, uint16_t i, uint64_t addr, uint32_t len, uint16_t flags, uint16_t next) {
    vring_desc d{addr, len, flags, next};
    (void)mem.write_obj(GuestAddress(desc_addr(q) + 16ull * i), d);
  }
  // Publishes head on queue q's available ring (the index moves by one).
  void publish(uint16_t q, uint16_t head) {
    uint16_t idx = avail_idx_[q];
    (void)mem.write_obj<uint16_t>(GuestAddress(avail_addr(q) + 4 + 2 * (idx % kQueueSize)), head);
    set_avail_idx(q, uint16_t(idx + 1));
  }
  void set_avail_idx(uint16_t q, uint16_t idx) {
    avail_idx_[q] = idx;
    (void)mem.write_obj<uint16_t>(GuestAddress(avail_addr(q) + 2), idx);
  }
  // A well-formed chain of bufs from the queue's next free descriptors; returns its head.
  uint16_t submit(uint16_t q, const std::vector<Buf>& bufs) {
    uint16_t head = next_desc_[q];
    for (size_t i = 0; i < bufs.size(); ++i) {
      uint16_t at = uint16_t((head + i) % kQueueSize);
      uint16_t flags = uint16_t((bufs[i].writable ? VRING_DESC_F_WRITE : 0) | (i + 1 < bufs.size() ? VRING_DESC_F_NEXT : 0));
      write_desc(q, at, bufs[i].addr, bufs[i].len, flags, uint16_t((at + 1) % kQueueSize));
    }
    next_desc_[q] = uint16_t((head + bufs.size()) % kQueueSize);
    publish(q, head);
    return head;
  }
  // The guest's QueueNotify write, through the registry as KVM would take it, then the loop's turn.
  void notify(uint16_t q) {
    uint32_t v = q;
    registry.dispatch_write(IoSpace::Mmio, kBase + VIRTIO_MMIO_QUEUE_NOTIFY, std::span(reinterpret_cast<const uint8_t*>(&v), 4));
    run();
  }
  void run() {
    while (*loop->run_once(0) > 0) {
    }
  }
  std::optional<vring_used_elem> next_used(uint16_t q) {
    uint16_t idx = *mem.read_obj<uint16_t>(GuestAddress(used_addr(q) + 2));
    if (idx == used_seen_[q]) return std::nullopt;
    auto e = *mem.read_obj<vring_used_elem>(GuestAddress(used_addr(q) + 4 + 8 * (used_seen_[q] % kQueueSize)));
    ++used_seen_[q];
    return e;
  }
  uint16_t used_idx(uint16_t q) { return *mem.read_obj<uint16_t>(GuestAddress(used_addr(q) + 2)); }

  GuestMemory mem;
  IoEventRegistry registry;
  std::unique_ptr<EventLoop> loop;
  std::shared_ptr<CountingLine> irq;
  std::shared_ptr<virtio::MmioTransport> transport;

 private:
  std::vector<uint16_t> avail_idx_, used_seen_, next_desc_;
};

}  // namespace evmm::testing
