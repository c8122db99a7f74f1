#include "devices/debug_console.h"

#include <algorithm>

#include "base/log.h"

namespace evmm {

void DebugConsole::read(uint64_t offset, std::span<uint8_t> data) {
  if (data.size() != 1 || offset != 0) {
    std::fill(data.begin(), data.end(), 0xff);
    stats_.bad_accesses.fetch_add(1, std::memory_order_relaxed);
    LOG_DEBUG("debugcon: {}-byte read at offset {} ignored", data.size(), offset);
    return;
  }
  data[0] = kPresence;
}

void DebugConsole::write(uint64_t offset, std::span<const uint8_t> data) {
  if (data.size() != 1 || offset != 0) {
    stats_.bad_accesses.fetch_add(1, std::memory_order_relaxed);
    LOG_DEBUG("debugcon: {}-byte write at offset {} ignored", data.size(), offset);
    return;
  }
  stats_.bytes.fetch_add(1, std::memory_order_relaxed);
  if (out_) out_(data);
}

}  // namespace evmm
