#include "devices/virtio/blk/blk.h"

#include "devices/virtio/virtio_abi.h"

#include <fcntl.h>
#include <linux/virtio_blk.h>
#include <sys/epoll.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cstring>

#include "base/log.h"

namespace evmm::virtio {

namespace {

constexpr uint64_t bit(unsigned n) { return 1ull << n; }

bool is_write(BlkOp op) { return op == BlkOp::Out || op == BlkOp::Discard || op == BlkOp::WriteZeroes; }

Result<UniqueFd> open_image(const BlkConfig& cfg) {
  int fd = ::open(cfg.path.c_str(), (cfg.readonly ? O_RDONLY : O_RDWR) | O_CLOEXEC);
  if (fd < 0) {
    int e = errno;
    if (!cfg.readonly && (e == EACCES || e == EPERM || e == EROFS))
      return make_error(e, "--disk path={}: cannot open it for writing; add ',readonly' to use it read-only", cfg.path);
    return make_error(e, "--disk path={}: cannot open the image", cfg.path);
  }
  UniqueFd owned(fd);
  struct stat st;
  if (::fstat(fd, &st) != 0) return errno_error("--disk path={}: fstat", cfg.path);
  if (!S_ISREG(st.st_mode) && !S_ISBLK(st.st_mode))
    return make_error(EINVAL, "--disk path={}: not a regular file or block device", cfg.path);
  // root may open a file whose mode forbids writing; a disk honours the mode all the same.
  if (!cfg.readonly && S_ISREG(st.st_mode) && !(st.st_mode & (S_IWUSR | S_IWGRP | S_IWOTH)))
    return make_error(EACCES, "--disk path={}: the file has no write permission; add ',readonly' to use it read-only",
                      cfg.path);
  return owned;
}

}  // namespace

Result<std::shared_ptr<BlkDevice>> BlkDevice::create(const BlkConfig& cfg) {
  return create(cfg, [&cfg](int fd) { return IoEngine::create(cfg.engine, fd, cfg.engine_options); });
}

Result<std::shared_ptr<BlkDevice>> BlkDevice::create(const BlkConfig& cfg, const EngineMaker& make) {
  UniqueFd fd = TRY(open_image(cfg));
  off_t size = ::lseek(fd.get(), 0, SEEK_END);
  if (size < 0) return errno_error("--disk path={}: cannot find its size", cfg.path);
  if (size % kSectorSize)
    LOG_WARN("--disk path={}: {} bytes is not a whole number of 512-byte sectors; the last {} bytes are not used",
             cfg.path, size, size % kSectorSize);
  auto engine = TRY_CTX(make(fd.get()), fmt::format("--disk path={}", cfg.path));
  return std::shared_ptr<BlkDevice>(new BlkDevice(cfg, std::move(fd), uint64_t(size), std::move(engine)));
}

BlkDevice::BlkDevice(const BlkConfig& cfg, UniqueFd fd, uint64_t size, std::unique_ptr<IoEngine> engine)
    : queue_size_(cfg.queue_size), fd_(std::move(fd)), engine_(std::move(engine)) {
  serial_ = cfg.serial;
  if (serial_.empty()) serial_ = cfg.path.substr(cfg.path.find_last_of('/') + 1);
  serial_.resize(std::min<size_t>(serial_.size(), kBlkIdBytes));
  limits_.capacity = size / kSectorSize;
  // Linux puts its header and status in descriptors of their own (§5.2.6): two of the queue's.
  limits_.seg_max = cfg.seg_max ? cfg.seg_max : queue_size_ > 2 ? queue_size_ - 2u : 1u;
  limits_.readonly = cfg.readonly;
  limits_.max_discard_sectors = cfg.max_discard_sectors;
  limits_.max_discard_seg = cfg.max_discard_seg;
  limits_.max_write_zeroes_sectors = cfg.max_write_zeroes_sectors;
  limits_.max_write_zeroes_seg = cfg.max_write_zeroes_seg;

  virtio_blk_config c{};
  c.capacity = limits_.capacity;
  c.seg_max = limits_.seg_max;
  c.blk_size = kSectorSize;
  c.num_queues = 1;
  c.max_discard_sectors = cfg.max_discard_sectors;
  c.max_discard_seg = cfg.max_discard_seg;
  c.discard_sector_alignment = 4096 / kSectorSize;  // the host's page: smaller holes only zero bytes
  c.max_write_zeroes_sectors = cfg.max_write_zeroes_sectors;
  c.max_write_zeroes_seg = cfg.max_write_zeroes_seg;
  c.write_zeroes_may_unmap = 1;
  config_.resize(sizeof c);
  std::memcpy(config_.data(), &c, sizeof c);
  LOG_INFO("virtio-blk: {} ({} sectors{}), {} engine", cfg.path, limits_.capacity, cfg.readonly ? ", read-only" : "",
           to_string(engine_->kind()));
}

BlkDevice::~BlkDevice() {
  // The engine waits for its operations before the image fd closes.
  engine_.reset();
}

uint64_t BlkDevice::features() const {
  uint64_t f = bit(VIRTIO_RING_F_EVENT_IDX) | bit(VIRTIO_RING_F_INDIRECT_DESC) | bit(VIRTIO_BLK_F_SEG_MAX) |
               bit(VIRTIO_BLK_F_BLK_SIZE) | bit(VIRTIO_BLK_F_FLUSH);
  // A read-only disk has nothing to discard or zero.
  f |= limits_.readonly ? bit(VIRTIO_BLK_F_RO) : bit(VIRTIO_BLK_F_DISCARD) | bit(VIRTIO_BLK_F_WRITE_ZEROES);
  return f;
}

void BlkDevice::read_config(uint64_t offset, std::span<uint8_t> data) const {
  if (offset >= config_.size()) return;
  size_t n = std::min<size_t>(data.size(), config_.size() - offset);
  std::memcpy(data.data(), config_.data() + offset, n);
}

Result<void> BlkDevice::activate(const GuestMemory& mem, std::span<Virtqueue> queues, uint64_t features,
                                 VirtioSignals& signals) {
  mem_ = &mem;
  queue_ = &queues[0];
  signals_ = &signals;
  writeback_ = features & bit(VIRTIO_BLK_F_FLUSH);
  limits_.discard = features & bit(VIRTIO_BLK_F_DISCARD);
  limits_.write_zeroes = features & bit(VIRTIO_BLK_F_WRITE_ZEROES);
  return {};
}

void BlkDevice::reset() {
  // In-flight operations keep running into guest memory; their completions no longer match a slot.
  ++generation_;
  slots_.clear();
  free_.clear();
  writes_in_flight_.clear();
  waiting_flushes_.clear();
  mem_ = nullptr;
  queue_ = nullptr;
  signals_ = nullptr;
}

void BlkDevice::init_events(EventOps& ops) {
  if (auto r = ops.add(engine_->event_fd(), EPOLLIN, 0); !r) LOG_ERROR("virtio-blk: {}", r.error().message());
}

void BlkDevice::notify(uint16_t) { serve(); }

void BlkDevice::serve() {
  if (!queue_) return;
  while (queue_->pop(chain_) == Virtqueue::Pop::Chain) {
    metrics_.requests.fetch_add(1, std::memory_order_relaxed);
    parse_request(chain_, *mem_, limits_, req_);
    if (req_.fault) {
      metrics_.count(*req_.fault);
      answer(chain_.head, req_.status, req_.answer, req_.status ? 1 : 0);
      continue;
    }
    dispatch();
  }
  engine_->kick();
  if (used_any_) {
    used_any_ = false;
    signals_->used(0);
  }
}

void BlkDevice::answer(uint16_t head, std::optional<GuestAddress> status, uint8_t value, uint32_t used_len) {
  if (status) (void)mem_->write_obj<uint8_t>(*status, value);
  queue_->add_used(head, used_len);
  used_any_ = true;
}

uint32_t BlkDevice::start(BlkOp op) {
  uint32_t slot;
  if (!free_.empty()) {
    slot = free_.back();
    free_.pop_back();
  } else {
    slot = uint32_t(slots_.size());
    slots_.emplace_back();
  }
  InFlight& f = slots_[slot];
  f = InFlight{};
  f.active = true;
  f.head = chain_.head;
  f.status = *req_.status;
  f.op = op;
  if (is_write(op)) {
    f.write_seq = next_write_seq_++;
    writes_in_flight_.insert(*f.write_seq);
    // §5.2.6.2 case 1: without FLUSH negotiated a write is stable when it completes.
    f.then_sync = !writeback_ && op != BlkOp::Out;
  }
  return slot;
}

void BlkDevice::submit(uint32_t slot, IoOp op) {
  op.tag = tag(slot);
  ++slots_[slot].pending;
  engine_->submit(std::move(op));
}

void BlkDevice::dispatch() {
  const uint64_t offset = req_.sector * kSectorSize;
  switch (req_.op) {
    case BlkOp::In:
    case BlkOp::Out: {
      const bool in = req_.op == BlkOp::In;
      (in ? metrics_.reads : metrics_.writes).fetch_add(1, std::memory_order_relaxed);
      IoOp op{in ? IoOp::Kind::Read : IoOp::Kind::Write, offset, req_.data_len, {}, !in && !writeback_, 0};
      for (const GuestRange& r : req_.data) {
        // The walker checked every buffer is in RAM, so this cannot fail; answered IOERR if it does.
        if (!mem_->io_vectors(r.addr, r.len, op.iov)) {
          metrics_.host_errors.fetch_add(1, std::memory_order_relaxed);
          return answer(chain_.head, req_.status, VIRTIO_BLK_S_IOERR, 1);
        }
      }
      uint32_t slot = start(req_.op);
      slots_[slot].used_len = in ? uint32_t(req_.data_len) + 1 : 1;
      slots_[slot].bytes = req_.data_len;
      if (req_.data_len == 0) return finish(slot);
      return submit(slot, std::move(op));
    }
    case BlkOp::Flush: {
      metrics_.flushes.fetch_add(1, std::memory_order_relaxed);
      uint32_t slot = start(BlkOp::Flush);
      const uint64_t barrier = next_write_seq_;
      if (!writes_in_flight_.empty() && *writes_in_flight_.begin() < barrier) {
        metrics_.flushes_waited.fetch_add(1, std::memory_order_relaxed);
        waiting_flushes_.push_back({slot, barrier});
        return;
      }
      return submit(slot, IoOp{IoOp::Kind::Sync, 0, 0, {}, false, 0});
    }
    case BlkOp::GetId: {
      metrics_.get_ids.fetch_add(1, std::memory_order_relaxed);
      std::vector<uint8_t> id(kBlkIdBytes, 0);  // NUL-padded (§5.2.6)
      std::memcpy(id.data(), serial_.data(), serial_.size());
      uint64_t at = 0;
      for (const GuestRange& r : req_.data) {
        (void)mem_->write(r.addr, std::span(id.data() + at, r.len));
        at += r.len;
      }
      return answer(chain_.head, req_.status, VIRTIO_BLK_S_OK, uint32_t(req_.data_len) + 1);
    }
    case BlkOp::Discard:
    case BlkOp::WriteZeroes: {
      const bool discard = req_.op == BlkOp::Discard;
      (discard ? metrics_.discards : metrics_.write_zeroes).fetch_add(1, std::memory_order_relaxed);
      uint32_t slot = start(req_.op);
      for (const SectorRange& r : req_.ranges) {
        if (r.sectors == 0) continue;
        auto kind = discard || r.unmap ? IoOp::Kind::PunchHole : IoOp::Kind::ZeroRange;
        submit(slot, IoOp{kind, r.sector * kSectorSize, uint64_t(r.sectors) * kSectorSize, {}, false, 0});
      }
      if (slots_[slot].pending == 0) finish(slot);
      return;
    }
    case BlkOp::Other: break;
  }
}

void BlkDevice::process_event(const Event&, EventOps&) {
  completions_.clear();
  engine_->reap(completions_);
  for (const IoCompletion& c : completions_) on_completion(c);
  if (!queue_) return;
  engine_->kick();
  if (used_any_) {
    used_any_ = false;
    signals_->used(0);
  }
}

void BlkDevice::on_completion(const IoCompletion& c) {
  const uint32_t slot = uint32_t(c.tag);
  if (uint32_t(c.tag >> 32) != generation_ || slot >= slots_.size() || !slots_[slot].active) {
    metrics_.dropped_completions.fetch_add(1, std::memory_order_relaxed);
    return;
  }
  InFlight& f = slots_[slot];
  int result = c.result;
  // A discard is a hint (§5.2.6.2 "MAY deallocate"): a filesystem that cannot punch holes ignores it.
  if (f.op == BlkOp::Discard && result == -EOPNOTSUPP) result = 0;
  if (result < 0 && f.error == 0) f.error = result;
  if (--f.pending > 0) return;
  if (f.then_sync && f.error == 0) {
    f.then_sync = false;
    return submit(slot, IoOp{IoOp::Kind::Sync, 0, 0, {}, false, 0});
  }
  finish(slot);
}

void BlkDevice::finish(uint32_t slot) {
  InFlight& f = slots_[slot];
  if (f.error) {
    // The first is worth a line; every one is counted.
    if (metrics_.host_errors.fetch_add(1, std::memory_order_relaxed) == 0)
      LOG_WARN("virtio-blk: host I/O error: {}; answered IOERR (further ones are counted, not logged)",
               std::strerror(-f.error));
  } else if (f.op == BlkOp::In) {
    metrics_.read_bytes.fetch_add(f.bytes, std::memory_order_relaxed);
  } else if (f.op == BlkOp::Out) {
    metrics_.write_bytes.fetch_add(f.bytes, std::memory_order_relaxed);
  }
  answer(f.head, f.status, f.error ? VIRTIO_BLK_S_IOERR : VIRTIO_BLK_S_OK, f.used_len);
  const std::optional<uint64_t> seq = f.write_seq;
  f.active = false;
  free_.push_back(slot);
  if (seq) {
    writes_in_flight_.erase(*seq);
    release_flushes();
  }
}

void BlkDevice::release_flushes() {
  // Barriers grow along the deque: release from the front while nothing older is in flight.
  while (!waiting_flushes_.empty()) {
    const WaitingFlush w = waiting_flushes_.front();
    if (!writes_in_flight_.empty() && *writes_in_flight_.begin() < w.barrier) return;
    waiting_flushes_.pop_front();
    submit(w.slot, IoOp{IoOp::Kind::Sync, 0, 0, {}, false, 0});
  }
}

}  // namespace evmm::virtio
