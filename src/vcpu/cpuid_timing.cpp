#include "vcpu/cpuid_timing.h"

#include <algorithm>

namespace evmm {

namespace {
// "KVMKVMKVM\0\0\0" in EBX, ECX, EDX of leaf 0x40000000.
constexpr uint32_t kKvmSigEbx = 0x4b4d564b, kKvmSigEcx = 0x564b4d56, kKvmSigEdx = 0x0000004d;
}  // namespace

bool add_cpuid_timing_leaf(CpuidTable& table, uint32_t tsc_khz) {
  if (tsc_khz == 0) return false;
  auto* base = table.find(0x40000000);
  if (!base || base->ebx != kKvmSigEbx || base->ecx != kKvmSigEcx || base->edx != kKvmSigEdx) return false;
  base->eax = std::max(base->eax, kCpuidTimingLeaf);
  kvm_cpuid_entry2 leaf{};
  leaf.function = kCpuidTimingLeaf;
  leaf.eax = tsc_khz;
  leaf.ebx = kLapicBusKhz;
  if (auto* old = table.find(kCpuidTimingLeaf)) *old = leaf;
  else table.entries().push_back(leaf);
  return true;
}

}  // namespace evmm
