#include "devices/debug_exit.h"

#include <algorithm>

#include "base/log.h"

namespace evmm {

void DebugExit::read(const BusRead& io) { std::fill(io.data.begin(), io.data.end(), 0xff); }

void DebugExit::write(const BusWrite& io) {
  size_t n = io.data.size();
  if (io.offset != 0 || (n != 1 && n != 2 && n != 4)) {
    stats_.bad_accesses.fetch_add(1, std::memory_order_relaxed);
    LOG_DEBUG("debug-exit: {}-byte write at offset {} ignored", n, io.offset);
    return;
  }
  uint32_t v = 0;
  for (size_t i = 0; i < n; ++i) v |= uint32_t{io.data[i]} << (8 * i);
  uint32_t status = (v << 1) | 1;
  stats_.exits.fetch_add(1, std::memory_order_relaxed);
  LOG_DEBUG("debug-exit: guest wrote {:#x}, exit status {:#x}", v, status);
  vm_.request_stop(StopReason::DebugExit, static_cast<int>(status));
}

}  // namespace evmm
