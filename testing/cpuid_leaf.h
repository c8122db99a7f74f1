// One CPUID entry for the tables that CPUID unit tests build by hand.
#pragma once

#include "kvm/kvm_uapi.h"  // first: it checks the kernel headers it wraps

#include <cstdint>

namespace evmm::testing {

inline kvm_cpuid_entry2 leaf(uint32_t fn, uint32_t eax = 0, uint32_t ebx = 0, uint32_t ecx = 0, uint32_t edx = 0) {
  kvm_cpuid_entry2 e{};
  e.function = fn;
  e.eax = eax;
  e.ebx = ebx;
  e.ecx = ecx;
  e.edx = edx;
  return e;
}

}  // namespace evmm::testing
