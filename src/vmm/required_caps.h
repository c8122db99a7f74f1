// The KVM capabilities evmm cannot run without, and the optional ones `evmm caps` reports: policy,
// so it lives here and not in kvm/, which only asks KVM (System::check_extension).
#pragma once

#include <span>

#include "base/result.h"
#include "kvm/system.h"

namespace evmm {

struct Capability {
  int id;
  const char* name;
  bool required;
  const char* why;
};
std::span<const Capability> known_capabilities();
// ENOTSUP naming the first missing required capability.
Result<void> check_required_capabilities(const System& kvm);

}  // namespace evmm
