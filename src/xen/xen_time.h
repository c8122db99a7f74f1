// Xen system time: nanoseconds since the VM was created, on host CLOCK_MONOTONIC; each vcpu_info's
// vcpu_time_info maps the guest TSC onto it (Xen's public xen.h, struct vcpu_time_info).
#pragma once

#include <time.h>

#include <cstdint>

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

}  // namespace evmm
