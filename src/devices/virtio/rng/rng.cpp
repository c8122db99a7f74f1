#include "devices/virtio/rng/rng.h"

#include "devices/virtio/virtio_abi.h"

#include <sys/epoll.h>
#include <sys/random.h>
#include <sys/timerfd.h>
#include <time.h>
#include <unistd.h>

#include <array>

#include "base/log.h"

namespace evmm::virtio {

namespace {

uint64_t now_ns() {
  timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return uint64_t(ts.tv_sec) * 1'000'000'000ull + uint64_t(ts.tv_nsec);
}

}  // namespace

RngDevice::RngDevice(const RngConfig& cfg, UniqueFd timer)
    : bucket_(cfg.rate, cfg.burst, now_ns()), timer_(std::move(timer)) {}

Result<std::shared_ptr<RngDevice>> RngDevice::create(const RngConfig& cfg) {
  int fd = ::timerfd_create(CLOCK_MONOTONIC, TFD_NONBLOCK | TFD_CLOEXEC);
  if (fd < 0) return errno_error("virtio-rng: timerfd_create");
  return std::shared_ptr<RngDevice>(new RngDevice(cfg, UniqueFd(fd)));
}

uint64_t RngDevice::features() const {
  return (1ull << VIRTIO_RING_F_EVENT_IDX) | (1ull << VIRTIO_RING_F_INDIRECT_DESC);
}

Result<void> RngDevice::activate(const GuestMemory& mem, std::span<Virtqueue> queues, uint64_t, VirtioSignals& signals) {
  mem_ = &mem;
  queue_ = &queues[0];
  signals_ = &signals;
  return {};
}

void RngDevice::reset() {
  mem_ = nullptr;
  queue_ = nullptr;
  signals_ = nullptr;
}

void RngDevice::notify(uint16_t) { serve(); }

uint64_t RngDevice::fill(const DescriptorChain& chain, uint64_t budget) {
  std::array<uint8_t, 4096> buf;
  uint64_t done = 0;
  for (size_t i = chain.readable; i < chain.descs.size() && done < budget; ++i) {
    const Descriptor& d = chain.descs[i];
    for (uint64_t off = 0; off < d.len && done < budget;) {
      size_t n = size_t(std::min<uint64_t>({buf.size(), d.len - off, budget - done}));
      ssize_t got = ::getrandom(buf.data(), n, 0);
      if (got <= 0) {
        metrics_.host_errors.fetch_add(1, std::memory_order_relaxed);
        return done;
      }
      if (!mem_->write(d.addr + off, std::span(buf.data(), size_t(got)))) {
        metrics_.host_errors.fetch_add(1, std::memory_order_relaxed);
        return done;
      }
      off += uint64_t(got);
      done += uint64_t(got);
    }
  }
  return done;
}

void RngDevice::serve() {
  if (!queue_) return;
  bool added = false;
  while (true) {
    uint64_t wait = bucket_.wait_ns(now_ns());
    if (wait > 0) {
      metrics_.throttled.fetch_add(1, std::memory_order_relaxed);
      arm_timer(wait);
      break;
    }
    if (queue_->pop(chain_) != Virtqueue::Pop::Chain) break;
    metrics_.requests.fetch_add(1, std::memory_order_relaxed);
    uint32_t written = 0;
    // §5.4.6.1: the device writes only into device-writable buffers; a chain with readable ones is the
    // driver's mistake, answered with nothing written.
    if (chain_.readable != 0 || chain_.writable_bytes == 0) {
      metrics_.bad_requests.fetch_add(1, std::memory_order_relaxed);
    } else {
      uint64_t budget = bucket_.take(chain_.writable_bytes, now_ns());
      written = static_cast<uint32_t>(fill(chain_, budget));
      metrics_.bytes.fetch_add(written, std::memory_order_relaxed);
    }
    queue_->add_used(chain_.head, written);
    added = true;
  }
  if (added) signals_->used(0);
}

void RngDevice::arm_timer(uint64_t ns) {
  if (timer_armed_) return;
  itimerspec its{};
  its.it_value.tv_sec = time_t(ns / 1'000'000'000ull);
  its.it_value.tv_nsec = long(ns % 1'000'000'000ull);
  if (::timerfd_settime(timer_.get(), 0, &its, nullptr) == 0) timer_armed_ = true;
  else metrics_.host_errors.fetch_add(1, std::memory_order_relaxed);
}

void RngDevice::init_events(EventOps& ops) {
  if (auto r = ops.add(timer_.get(), EPOLLIN, 0); !r) LOG_ERROR("virtio-rng: {}", r.error().message());
}

void RngDevice::process_event(const Event&, EventOps&) {
  uint64_t expirations;
  (void)!::read(timer_.get(), &expirations, sizeof expirations);
  timer_armed_ = false;
  serve();
}

}  // namespace evmm::virtio
