// Xen system time (Xen's public xen.h, struct vcpu_time_info): the TSC scale, and vcpu_time_info
// written into each vcpu_info under its seqlock.
#include "xen/xen_time.h"

#include <cstddef>

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

void XenClock::set_reference(uint64_t tsc, uint64_t mono) {
  ref_tsc_.store(tsc);
  ref_system_ns_.store(mono > start_mono_ns_ ? mono - start_mono_ns_ : 0);
}

Result<void> XenClock::write(const GuestSlice& info, XenWidth w) const {
  size_t off = time_offset(w);
  if (info.size() < off + sizeof(vcpu_time_info)) return {};
  // A 32-bit guest's vcpu_info may sit at any 4-byte boundary, so the struct is written bytewise;
  // its version word is 4-byte aligned either way. The seqlock protocol: odd while being written.
  uint32_t v = TRY(info.load<uint32_t>(off, std::memory_order_relaxed)) | 1;
  TRY(info.store<uint32_t>(off, v, std::memory_order_seq_cst));
  vcpu_time_info f{};
  f.tsc_timestamp = ref_tsc_.load();
  f.system_time = ref_system_ns_.load();
  f.tsc_to_system_mul = scale_.mul;
  f.tsc_shift = scale_.shift;
  f.flags = XEN_PVCLOCK_TSC_STABLE_BIT;
  constexpr size_t kBody = offsetof(vcpu_time_info, tsc_timestamp);
  // SAFETY: f is a trivially copyable local; its bytes from kBody on are the body.
  auto body = info.copy_in(off + kBody, std::span(reinterpret_cast<const uint8_t*>(&f) + kBody, sizeof f - kBody));
  // The version goes even whatever the body did, so that the guest's reader never spins on it.
  TRY(info.store<uint32_t>(off, v + 1, std::memory_order_seq_cst));
  return body;
}

}  // namespace evmm
