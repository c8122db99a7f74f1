// Xen system time: nanoseconds since the VM was created, on host CLOCK_MONOTONIC; each vcpu_info's
// vcpu_time_info maps the guest TSC onto it (Xen's public xen.h, struct vcpu_time_info).
#pragma once

#include <time.h>

#include <atomic>
#include <cstdint>

#include "base/result.h"
#include "memory/guest_slice.h"
#include "xen/xen_abi.h"

namespace evmm {

// Conversion of guest TSC ticks into Xen system time, as vcpu_time_info expresses it:
// ns = ((ticks << shift) * mul) >> 32, with a negative shift shifting right.
struct XenTimeScale {
  uint32_t mul;
  int8_t shift;
};
XenTimeScale xen_time_scale(uint64_t tsc_khz);
uint64_t xen_scale_delta(uint64_t ticks, XenTimeScale s);

// Host CLOCK_MONOTONIC now, in ns, and ns as a timespec.
uint64_t mono_ns();
timespec to_timespec(uint64_t ns);

// One VM's Xen system time, and what each vcpu_info's vcpu_time_info says about it.
class XenClock {
 public:
  // System time 0 is now; tsc_khz is the guest TSC's rate (KVM_GET_TSC_KHZ).
  explicit XenClock(uint64_t tsc_khz) : start_mono_ns_(mono_ns()), scale_(xen_time_scale(tsc_khz)) {}

  // The host CLOCK_MONOTONIC time of system time 0.
  uint64_t start_mono_ns() const { return start_mono_ns_; }
  // System time now, in ns.
  uint64_t now_ns() const { return mono_ns() - start_mono_ns_; }
  // Anchors system time: guest TSC tsc at host CLOCK_MONOTONIC mono_ns. Until then system time
  // reads 0 at every TSC value.
  void set_reference(uint64_t tsc, uint64_t mono_ns);
  // Writes vcpu_time_info into a vcpu_info of width w under its seqlock; nothing when the slice is
  // too short. EINVAL for a misaligned version word.
  Result<void> write(const GuestSlice& vcpu_info, XenWidth w) const;

 private:
  const uint64_t start_mono_ns_;
  const XenTimeScale scale_;
  std::atomic<uint64_t> ref_tsc_{0}, ref_system_ns_{0};
};

}  // namespace evmm
