#include "devices/pv_control.h"

#include <algorithm>

#include "base/log.h"
#include "memory/layout.h"

namespace evmm {

void PvControl::read(uint64_t, std::span<uint8_t> data) { std::fill(data.begin(), data.end(), 0); }

void PvControl::write(uint64_t, std::span<const uint8_t> data) {
  if (data.size() != 1 || data[0] != platform::kPvSuspend) {
    if (bad_.fetch_add(1) == 0) LOG_WARN("pv control: ignored a {}-byte write", data.size());
    return;
  }
  suspends_.fetch_add(1);
  suspend_caller_();
}

}  // namespace evmm
