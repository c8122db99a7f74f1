// A XenHvm without KVM, for unit tests and the fuzzer: guest memory is a plain GuestMemory, guest
// virtual addresses map 1:1 onto it except for a hole, and upcalls are recorded instead of
// injected. The caller's wait really sleeps (ppoll), so timeouts behave as on a vCPU.
#pragma once

#include <poll.h>

#include <mutex>
#include <vector>

#include "xen/xen_hvm.h"

namespace evmm::testing {

// Guest-virtual [kHole, kHole + kHoleSize) translates to nothing; pages in [kReadOnly,
// kReadOnly + 4096) are read-only.
constexpr uint64_t kHole = 0x800000, kHoleSize = 0x100000, kReadOnly = 0x7ff000;

class FakeCaller final : public XenCaller {
 public:
  // sleeps: false makes every wait end at once as if the vCPU were asked to exit (Kicked), which
  // ends every waiting hypercall: for the fuzzer.
  FakeCaller(const GuestMemory& mem, uint32_t vcpu, XenWidth width, bool sleeps = true)
      : vcpu_(vcpu),
        sleeps_(sleeps),
        width_(width),
        va_(mem,
            [](uint64_t gva) -> std::optional<GuestPage> {
              if (gva >= kHole && gva < kHole + kHoleSize) return std::nullopt;
              return GuestPage{gva, !(gva >= kReadOnly && gva < kReadOnly + 4096)};
            },
            width == XenWidth::Bits64 ? ~uint64_t{0} : 0xffffffffu) {}

  uint32_t vcpu() const override { return vcpu_; }
  XenWidth width() const override { return width_; }
  const GuestVa& va() const override { return va_; }
  Result<void> halt() override {
    halts++;
    return {};
  }
  int halts = 0;  // SCHEDOP_block's requests to halt
  Result<XenWait> wait(int fd, uint64_t deadline, const std::function<bool()>& done) override {
    if (done()) return XenWait::Done;
    if (!sleeps_) return XenWait::Kicked;
    timespec now;
    clock_gettime(CLOCK_MONOTONIC, &now);
    uint64_t n = uint64_t(now.tv_sec) * 1'000'000'000u + uint64_t(now.tv_nsec);
    timespec ts{};
    if (deadline > n) ts = {static_cast<time_t>((deadline - n) / 1'000'000'000u), static_cast<long>((deadline - n) % 1'000'000'000u)};
    pollfd p{fd, POLLIN, 0};
    int r = ::ppoll(&p, 1, deadline ? &ts : nullptr, nullptr);
    if (r < 0) return errno_error("ppoll");
    return r > 0 ? XenWait::Readable : XenWait::TimedOut;
  }

 private:
  uint32_t vcpu_;
  bool sleeps_;
  XenWidth width_;
  GuestVa va_;
};

// Records upcalls and stop requests.
struct Recorder : VmStopHandler {
  void request_stop(StopReason reason, int status) override {
    std::lock_guard l(mu);
    stops.push_back({reason, status});
  }
  void upcall(uint32_t vcpu, uint8_t vector) {
    std::lock_guard l(mu);
    upcalls.push_back({vcpu, vector});
  }
  size_t upcall_count() {
    std::lock_guard l(mu);
    return upcalls.size();
  }
  std::vector<std::pair<uint32_t, uint8_t>> take_upcalls() {
    std::lock_guard l(mu);
    return std::exchange(upcalls, {});
  }
  std::mutex mu;
  std::vector<std::pair<StopReason, int>> stops;
  std::vector<std::pair<uint32_t, uint8_t>> upcalls;
  std::string console;
};

inline std::unique_ptr<XenHvm> make_xen(const GuestMemory& mem, Recorder& rec, uint32_t vcpus = 2) {
  XenHvm::Env env{
      .vm = nullptr,
      .mem = &mem,
      .vcpus = vcpus,
      .tsc_khz = 2'000'000,
      .console = [&rec](std::span<const uint8_t> b) {
        std::lock_guard l(rec.mu);
        rec.console.append(b.begin(), b.end());
      },
      .control = &rec,
      .notifier = nullptr,
      .inject_override = [&rec](uint32_t v, uint8_t vec) { rec.upcall(v, vec); },
  };
  auto x = XenHvm::create(std::move(env), XenConfig{});
  return x ? std::move(*x) : nullptr;
}

}  // namespace evmm::testing
