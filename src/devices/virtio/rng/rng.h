// virtio-rng (virtio 1.2 §5.4): one request queue; each chain's writable buffers are filled with
// bytes from getrandom(2), as many as the rate limit allows now (a short used length is legal).
// When the bucket is empty the device waits on a timerfd and serves the rest when it fires.
#pragma once

#include <atomic>
#include <cstdint>
#include <memory>

#include "base/fd.h"
#include "devices/virtio/device.h"
#include "devices/virtio/rate_limiter.h"

namespace evmm::virtio {

struct RngConfig {
  // Bytes a second the guest may draw (0: unlimited) and the burst it may draw at once.
  uint64_t rate = 1 << 20;
  uint64_t burst = 64 << 10;
};

struct RngMetrics {
  std::atomic<uint64_t> requests{0};
  std::atomic<uint64_t> bytes{0};
  std::atomic<uint64_t> throttled{0};      // times the bucket ran dry
  std::atomic<uint64_t> bad_requests{0};   // chains with a readable buffer or nothing writable
  std::atomic<uint64_t> host_errors{0};    // getrandom or guest-memory failures
};

class RngDevice final : public VirtioDevice {
 public:
  static Result<std::shared_ptr<RngDevice>> create(const RngConfig& cfg);

  DeviceType type() const override { return DeviceType::Rng; }
  uint64_t features() const override;
  std::span<const uint16_t> queue_sizes() const override { return {&kQueueSize, 1}; }
  void read_config(uint64_t, std::span<uint8_t>) const override {}  // no config space
  Result<void> activate(const GuestMemory& mem, std::span<Virtqueue> queues, uint64_t features,
                        VirtioSignals& signals) override;
  void reset() override;
  void notify(uint16_t q) override;
  void init_events(EventOps& ops) override;
  void process_event(const Event& event, EventOps& ops) override;

  const RngMetrics& metrics() const { return metrics_; }

 private:
  static constexpr uint16_t kQueueSize = 256;
  RngDevice(const RngConfig& cfg, UniqueFd timer);
  void serve();
  // Fills the chain's writable buffers with up to `budget` random bytes; returns how many.
  uint64_t fill(const DescriptorChain& chain, uint64_t budget);
  void arm_timer(uint64_t ns);

  TokenBucket bucket_;
  UniqueFd timer_;
  bool timer_armed_ = false;
  const GuestMemory* mem_ = nullptr;
  Virtqueue* queue_ = nullptr;
  VirtioSignals* signals_ = nullptr;
  DescriptorChain chain_;
  RngMetrics metrics_;
};

}  // namespace evmm::virtio
