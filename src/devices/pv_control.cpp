#include "devices/pv_control.h"

#include <algorithm>

#include "base/log.h"
#include "memory/layout.h"

namespace evmm {

void PvControl::read(const BusRead& io) { std::fill(io.data.begin(), io.data.end(), 0); }

void PvControl::write(const BusWrite& io) {
  if (io.data.size() != 1 || io.data[0] != platform::kPvSuspend) {
    if (bad_.fetch_add(1) == 0) LOG_WARN("pv control: ignored a {}-byte write", io.data.size());
    return;
  }
  suspends_.fetch_add(1);
  suspend_caller_(io.vcpu);
}

}  // namespace evmm
