// virtio-blk (virtio 1.2 §5.2) on a raw image file: one request queue; read, write, flush, get-id,
// discard and write-zeroes, each answered with the status §5.2.6 asks for.
//
// Rules:
//   - Requests are parsed by parse_request (request.h); a malformed one is counted in BlkMetrics
//     and answered at once. The VM never stops for a guest's mistake.
//   - Data moves between the image and guest memory through the IoEngine (engine.h), whose
//     completions arrive on the event loop (process_event). A host I/O error is answered IOERR.
//   - A flush is sent to the host (fdatasync) only once every write, discard and write-zeroes made
//     available before it has completed, and is answered only when the fdatasync returned: a
//     completed flush means the data reached the host file (§5.2.6.2, "stable" writes).
//   - If the driver does not negotiate VIRTIO_BLK_F_FLUSH, every write is made stable before it
//     completes (RWF_DSYNC; an fdatasync after the fallocates), as §5.2.6.2 case 1 requires.
//   - reset() forgets every request in flight: their completions are counted and dropped, never
//     touching the queue. The I/O itself finishes into guest memory, which stays mapped.
//   - A read-only disk offers VIRTIO_BLK_F_RO and answers IOERR to every write (§5.2.6.2).
#pragma once

#include <cstdint>
#include <deque>
#include <functional>
#include <memory>
#include <optional>
#include <set>
#include <string>
#include <vector>

#include "base/fd.h"
#include "devices/virtio/blk/engine.h"
#include "devices/virtio/blk/metrics.h"
#include "devices/virtio/blk/request.h"
#include "devices/virtio/device.h"

namespace evmm::virtio {

struct BlkConfig {
  std::string path;
  bool readonly = false;
  BlkEngineKind engine = BlkEngineKind::Auto;
  EngineOptions engine_options;
  std::string serial;  // GET_ID's answer, at most 20 bytes; empty: the image's file name
  uint16_t queue_size = 256;
  uint32_t seg_max = 0;  // data buffers in one read or write; 0: the queue size less two
  uint32_t max_discard_sectors = 1u << 21;  // 1 GiB a range
  uint32_t max_discard_seg = 16;
  uint32_t max_write_zeroes_sectors = 1u << 21;
  uint32_t max_write_zeroes_seg = 16;
};

class BlkDevice final : public VirtioDevice {
 public:
  // Opens the image (read-write unless cfg.readonly) and starts its engine. A clear error for a
  // missing file, one that cannot be opened as asked, or one without write permission when
  // readonly is not given.
  static Result<std::shared_ptr<BlkDevice>> create(const BlkConfig& cfg);
  // As create, with the engine made by `make` on the image fd instead (tests: an engine that holds
  // operations until told to complete them).
  using EngineMaker = std::function<Result<std::unique_ptr<IoEngine>>(int fd)>;
  static Result<std::shared_ptr<BlkDevice>> create(const BlkConfig& cfg, const EngineMaker& make);
  ~BlkDevice() override;

  DeviceType type() const override { return DeviceType::Block; }
  uint64_t features() const override;
  std::span<const uint16_t> queue_sizes() const override { return {&queue_size_, 1}; }
  void read_config(uint64_t offset, std::span<uint8_t> data) const override;
  Result<void> activate(const GuestMemory& mem, std::span<Virtqueue> queues, uint64_t features,
                        VirtioSignals& signals) override;
  void reset() override;
  void notify(uint16_t q) override;
  void init_events(EventOps& ops) override;
  void process_event(const Event& event, EventOps& ops) override;

  const BlkMetrics& metrics() const { return metrics_; }
  BlkEngineKind engine_kind() const { return engine_->kind(); }
  uint64_t capacity() const { return limits_.capacity; }
  // Operations the engine has not completed yet (for tests and shutdown).
  size_t engine_in_flight() const { return engine_->in_flight(); }

 private:
  // A request handed to the engine: one or more operations (a discard's ranges) under one tag.
  struct InFlight {
    bool active = false;
    uint16_t head = 0;
    GuestAddress status{0};
    uint32_t used_len = 1;
    BlkOp op = BlkOp::Other;
    uint32_t pending = 0;  // operations not completed yet
    int error = 0;         // the first failure
    bool then_sync = false;
    std::optional<uint64_t> write_seq;  // writes, discards, write-zeroes: for flush ordering
    uint64_t bytes = 0;
  };
  struct WaitingFlush {
    uint32_t slot;
    uint64_t barrier;  // every write numbered below it must complete first
  };

  BlkDevice(const BlkConfig& cfg, UniqueFd fd, uint64_t size, std::unique_ptr<IoEngine> engine);
  void serve();
  void dispatch();
  void answer(uint16_t head, std::optional<GuestAddress> status, uint8_t value, uint32_t used_len);
  uint32_t start(BlkOp op);
  void submit(uint32_t slot, IoOp op);
  void start_flush(uint32_t slot);
  void on_completion(const IoCompletion& c);
  void finish(uint32_t slot);
  void release_flushes();
  uint64_t tag(uint32_t slot) const { return (uint64_t(generation_) << 32) | slot; }

  const uint16_t queue_size_;
  UniqueFd fd_;
  std::unique_ptr<IoEngine> engine_;
  std::string serial_;
  BlkLimits limits_;
  std::vector<uint8_t> config_;  // struct virtio_blk_config as the guest reads it
  bool writeback_ = false;       // VIRTIO_BLK_F_FLUSH negotiated

  const GuestMemory* mem_ = nullptr;
  Virtqueue* queue_ = nullptr;
  VirtioSignals* signals_ = nullptr;
  bool used_any_ = false;

  uint32_t generation_ = 0;  // bumped by reset(): completions of an older one are dropped
  std::vector<InFlight> slots_;
  std::vector<uint32_t> free_;
  uint64_t next_write_seq_ = 0;
  std::set<uint64_t> writes_in_flight_;
  std::deque<WaitingFlush> waiting_flushes_;

  DescriptorChain chain_;
  BlkRequest req_;
  std::vector<IoCompletion> completions_;
  BlkMetrics metrics_;
};

}  // namespace evmm::virtio
