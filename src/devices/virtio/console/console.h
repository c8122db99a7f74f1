// virtio-console (virtio 1.2 §5.3) with a single port: receiveq0 and transmitq0, no MULTIPORT, no
// size or emergency-write features (the config space reads as zeros). Linux shows it as hvc0.
//
// Rules:
//   - Output: each transmit chain's readable bytes go to the sink (the serial console's
//     ConsoleOutput) in order. A chain with writable buffers is the driver's mistake: counted,
//     returned with nothing sent.
//   - Input: push_input() takes bytes from any thread into a small buffer (kInputBuffer) and kicks
//     the device thread, which copies them into the guest's receive buffers. It takes fewer bytes
//     than offered when the buffer is full, and once the guest's buffers have drained it the
//     space callback says so (ConsoleInput::notify_space): no byte is dropped or reordered.
//
// Threads: queues on the device thread under the transport's lock (device.h); push_input from any
// thread; metrics from anywhere.
#pragma once

#include <atomic>
#include <functional>
#include <memory>
#include <mutex>
#include <vector>

#include "base/eventfd.h"
#include "devices/byte_sink.h"
#include "devices/virtio/device.h"

namespace evmm::virtio {

struct ConsoleMetrics {
  std::atomic<uint64_t> tx_bytes{0}, rx_bytes{0};
  std::atomic<uint64_t> bad_chains{0};     // a transmit chain with writable buffers, a receive one with readable
  std::atomic<uint64_t> input_full{0};     // times push_input took fewer bytes than offered
  std::atomic<uint64_t> memory_errors{0};  // guest-memory copies refused after the walker's checks
};

class ConsoleDevice final : public VirtioDevice {
 public:
  static constexpr uint16_t kRxQueue = 0, kTxQueue = 1;
  static constexpr uint16_t kQueueSize = 64;
  static constexpr size_t kInputBuffer = 4096;

  static Result<std::shared_ptr<ConsoleDevice>> create(ByteSink sink);

  // Input for the guest, from any thread: how many bytes were taken.
  size_t push_input(std::span<const uint8_t> bytes);
  // Called on the device thread when input was refused before and the buffer has emptied since.
  void set_space_callback(std::function<void()> cb);

  DeviceType type() const override { return DeviceType::Console; }
  uint64_t features() const override;
  std::span<const uint16_t> queue_sizes() const override { return kQueueSizes; }
  void read_config(uint64_t, std::span<uint8_t>) const override {}  // zeros: no feature uses it
  Result<void> activate(const GuestMemory& mem, std::span<Virtqueue> queues, uint64_t features,
                        VirtioSignals& signals) override;
  void reset() override;
  void notify(uint16_t q) override;
  void init_events(EventOps& ops) override;
  void process_event(const Event& event, EventOps& ops) override;

  const ConsoleMetrics& metrics() const { return metrics_; }

 private:
  static constexpr uint16_t kQueueSizes[2] = {kQueueSize, kQueueSize};
  ConsoleDevice(ByteSink sink, EventFd kick) : sink_(std::move(sink)), kick_(std::move(kick)) {}
  void process_tx();
  void process_rx();

  ByteSink sink_;
  EventFd kick_;  // push_input -> device thread
  const GuestMemory* mem_ = nullptr;
  Virtqueue* rx_ = nullptr;
  Virtqueue* tx_ = nullptr;
  VirtioSignals* signals_ = nullptr;
  DescriptorChain chain_;

  std::mutex in_mu_;
  std::vector<uint8_t> in_;        // input not yet in the guest, at most kInputBuffer bytes
  bool refused_ = false;           // push_input took fewer bytes than offered since the last callback
  std::function<void()> space_cb_;
  ConsoleMetrics metrics_;
};

}  // namespace evmm::virtio
