// What the pieces of XenHvm share (not part of its interface): the per-vCPU state, the counters,
// and the constants of the Xen ABI that more than one hypercall family uses.
#pragma once

#include <time.h>
#include <unistd.h>

#include <algorithm>
#include <array>
#include <atomic>
#include <cstring>

#include <xen/features.h>
#include <xen/hvm/hvm_op.h>
#include <xen/hvm/params.h>
#include <xen/memory.h>
#include <xen/sched.h>
#include <xen/vcpu.h>
#include <xen/version.h>

#include "base/discard.h"
#include "base/fd.h"
#include "base/log.h"
#include "xen/hypercall_abi.h"
#include "xen/shared_pages.h"
#include "xen/xen_hvm.h"
#include "xen/xen_time.h"

namespace evmm {

inline constexpr uint64_t kXenPage = kXenPageSize;
inline constexpr uint8_t kXenMinVector = 0x10;  // Xen refuses vectors below 16 (exceptions)

struct XenHvm::VcpuState {
  explicit VcpuState(EventFd w) : wake(std::move(w)) {}
  std::atomic<bool> up{false};
  std::atomic<bool> waiting{false};       // in SCHEDOP_poll
  EventFd wake;
};

struct XenHvm::Counters {
  std::atomic<uint64_t> hypercalls{0}, unknown{0}, faults{0}, console_bytes{0}, bad_msr{0}, discarded{0};
};

// An unknown hypercall or sub-op: counted, and answered as Xen answers it.
inline int64_t xen_enosys(std::atomic<uint64_t>& unknown) {
  unknown.fetch_add(1, std::memory_order_relaxed);
  return -XEN_ENOSYS;
}

}  // namespace evmm
