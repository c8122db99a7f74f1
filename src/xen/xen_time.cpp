// Xen system time and the singleshot timers (QEMU: the timer half of hw/i386/kvm/xen_evtchn.c and
// kvm_xen_set_vcpu_timer): vcpu_time_info in each vcpu_info, and a timerfd per vCPU raising VIRQ_TIMER.
#include "xen/xen_hvm_internal.h"

namespace evmm {

namespace {

size_t time_offset(XenWidth w) {
  return w == XenWidth::Bits64 ? offsetof(vcpu_info, time) : offsetof(vcpu_info_x86_32, time);
}

}  // namespace

uint64_t mono_ns() {
  timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return uint64_t(ts.tv_sec) * 1'000'000'000u + uint64_t(ts.tv_nsec);
}

timespec to_timespec(uint64_t ns) {
  return {static_cast<time_t>(ns / 1'000'000'000u), static_cast<long>(ns % 1'000'000'000u)};
}

XenTimeScale xen_time_scale(uint64_t tsc_khz) {
  if (tsc_khz == 0) return {0, 0};
  // ns per tick = 1e6 / khz. Find shift so that mul = 2^32 * 1e6 / (khz << shift) lies in
  // [2^31, 2^32): the most precision mul can carry.
  int shift = 0;
  // mul = 2^32 * 1e6 / (khz * 2^shift), exactly, for either sign of shift.
  auto mul_for = [&](int sh) {
    unsigned __int128 num = (unsigned __int128)1'000'000u << 32;
    unsigned __int128 den = tsc_khz;
    if (sh >= 0) den <<= sh;
    else num <<= -sh;
    return num / den;
  };
  while (mul_for(shift) >= ((unsigned __int128)1 << 32) && shift < 31) shift++;
  while (mul_for(shift - 1) < ((unsigned __int128)1 << 32) && shift > -31) shift--;
  return {static_cast<uint32_t>(mul_for(shift)), static_cast<int8_t>(shift)};
}

uint64_t xen_scale_delta(uint64_t ticks, XenTimeScale s) {
  if (s.shift >= 0) ticks <<= s.shift;
  else ticks >>= -s.shift;
  return static_cast<uint64_t>(((unsigned __int128)ticks * s.mul) >> 32);
}

// The timers: one timerfd per vCPU on the device loop, raising VIRQ_TIMER.

void XenHvm::Timers::init(EventOps& ops) {
  for (auto& v : xen_.vcpus_)
    if (auto r = ops.add(v->timer.get(), EPOLLIN); !r) LOG_ERROR("Xen timers: {}", r.error().message());
}

void XenHvm::Timers::process(int fd, uint32_t, EventOps&) {
  for (uint32_t i = 0; i < xen_.vcpus_.size(); i++) {
    if (xen_.vcpus_[i]->timer.get() != fd) continue;
    uint64_t expirations;
    if (::read(fd, &expirations, sizeof expirations) != sizeof expirations) return;  // disarmed meanwhile
    xen_.counters_->timer_fires.fetch_add(1, std::memory_order_relaxed);
    xen_.evtchn_->raise_virq(i, VIRQ_TIMER);
    return;
  }
}

std::shared_ptr<EventSubscriber> XenHvm::timers() { return timers_; }

void XenHvm::set_time_reference(uint64_t tsc, uint64_t mono) {
  ref_tsc_.store(tsc);
  ref_system_ns_.store(mono > start_mono_ns_ ? mono - start_mono_ns_ : 0);
}

uint64_t XenHvm::system_time_ns() const { return mono_ns() - start_mono_ns_; }

void XenHvm::write_time(uint32_t vcpu) {
  auto info = pages_->vcpu_info(vcpu);
  size_t off = time_offset(pages_->width());
  if (info.size() < off + sizeof(vcpu_time_info)) return;
  // A 32-bit guest's vcpu_info may sit at any 4-byte boundary, so the struct is written bytewise;
  // its version word is 4-byte aligned either way. The seqlock protocol: odd while being written.
  auto version = info.load<uint32_t>(off, std::memory_order_relaxed);
  if (!version) return;
  uint32_t v = *version | 1;
  (void)info.store<uint32_t>(off, v, std::memory_order_seq_cst);
  vcpu_time_info f{};
  f.tsc_timestamp = ref_tsc_.load();
  f.system_time = ref_system_ns_.load();
  f.tsc_to_system_mul = scale_.mul;
  f.tsc_shift = scale_.shift;
  f.flags = XEN_PVCLOCK_TSC_STABLE_BIT;
  constexpr size_t kBody = offsetof(vcpu_time_info, tsc_timestamp);
  // SAFETY: f is a trivially copyable local; its bytes from kBody on are the body.
  (void)info.copy_in(off + kBody, std::span(reinterpret_cast<const uint8_t*>(&f) + kBody, sizeof f - kBody));
  (void)info.store<uint32_t>(off, v + 1, std::memory_order_seq_cst);
}

void XenHvm::arm_timer(uint32_t vcpu, uint64_t timeout_abs_ns) {
  itimerspec its{};
  if (timeout_abs_ns) {
    // A deadline in the past fires at once (the smallest absolute time that is still armed).
    uint64_t at = start_mono_ns_ + std::min<uint64_t>(timeout_abs_ns, uint64_t{1} << 62);
    its.it_value = to_timespec(std::max<uint64_t>(at, 1));
  }
  if (timerfd_settime(vcpus_[vcpu]->timer.get(), TFD_TIMER_ABSTIME, &its, nullptr) < 0)
    LOG_WARN("Xen timer of vCPU {}: timerfd_settime: {}", vcpu, std::strerror(errno));
}

}  // namespace evmm
