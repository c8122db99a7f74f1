#include "devices/debug_console.h"

#include <algorithm>

#include "base/log.h"

namespace evmm {

void DebugConsole::read(const BusRead& io) {
  if (io.data.size() != 1 || io.offset != 0) {
    std::fill(io.data.begin(), io.data.end(), 0xff);
    stats_.bad_accesses.fetch_add(1, std::memory_order_relaxed);
    LOG_DEBUG("debugcon: {}-byte read at offset {} ignored", io.data.size(), io.offset);
    return;
  }
  io.data[0] = kPresence;
}

void DebugConsole::write(const BusWrite& io) {
  if (io.data.size() != 1 || io.offset != 0) {
    stats_.bad_accesses.fetch_add(1, std::memory_order_relaxed);
    LOG_DEBUG("debugcon: {}-byte write at offset {} ignored", io.data.size(), io.offset);
    return;
  }
  stats_.bytes.fetch_add(1, std::memory_order_relaxed);
  if (out_) out_(io.data);
}

}  // namespace evmm
