// vCPU MP states (DESIGN.md §5, seed 004).
//
// Runnable, Halted and Stopped are KVM's (KVM_GET/SET_MP_STATE with the in-kernel LAPIC): Stopped is
// a vCPU that has not been started or has received INIT, and waits for a SIPI. Suspended is evmm's
// own: x86 KVM has no such state, so the vCPU thread stops calling KVM_RUN and waits for a wakeup
// event aimed at its vCPU (vcpu/vcpu.h).
#pragma once

#include <cstdint>
#include <string_view>

#include "base/result.h"

namespace evmm {

enum class MpState { Runnable, Halted, Stopped, Suspended };

std::string_view to_string(MpState s);

// KVM_MP_STATE_* (x86) to MpState: RUNNABLE and SIPI_RECEIVED (about to run) are Runnable,
// UNINITIALIZED and INIT_RECEIVED are Stopped, HALTED is Halted. Other values: EINVAL.
Result<MpState> mp_state_from_kvm(uint32_t kvm_state);
// The KVM state to set for s: Stopped is INIT_RECEIVED (waits for a SIPI). Suspended has no KVM
// state: EINVAL.
Result<uint32_t> mp_state_to_kvm(MpState s);

// Why a suspended vCPU woke (bits of exit::Wakeup::reasons).
namespace wake {
constexpr uint32_t kApi = 1u << 0;        // Vcpu::wake()
constexpr uint32_t kInterrupt = 1u << 1;  // a vector newly pending in the vCPU's LAPIC IRR
constexpr uint32_t kNmi = 1u << 2;        // an NMI pending for the vCPU
}  // namespace wake

// The VMM's answer to a Wakeup.
enum class WakeDecision {
  Resume,        // runnable again: the guest continues where it stopped (or where the handler put it)
  StaySuspended  // sticky: the vCPU waits again, and the sources that woke it are suppressed
};

}  // namespace evmm
