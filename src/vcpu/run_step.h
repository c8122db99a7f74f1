// What one run step of a vCPU produced: an exit KVM returned (kvm/vcpu_exit.h), or one of evmm's
// own results, which KVM never returns and so do not belong in kvm/.
//
// A step is KVM_RUN, or, for a suspended vCPU, evmm's wait for a wakeup event (DESIGN.md §5); the
// exit requests it consumed are folded in (vcpu/exit_request.h, DESIGN.md §1). Spans inside a
// StepExit point into kvm_run and are valid until the next step.
#pragma once

#include <array>
#include <cstdint>
#include <utility>
#include <variant>

#include "kvm/vcpu_exit.h"

namespace evmm {

namespace exit {
// An exit request (seed 000) made the run return; count requests were delivered, at least 1. Made by
// the vCPU's run step (vcpu/exit_request.h), never by VcpuFd::run().
struct Request { uint64_t count; };
// A wakeup event for a vCPU in evmm's Suspended MP state (vcpu/mp_state.h), the counterpart of
// arm64's KVM_SYSTEM_EVENT_WAKEUP. reasons: wake::k* bits; vectors: the LAPIC IRR vectors that woke
// it (256 bits).
struct Wakeup { uint32_t reasons; std::array<uint32_t, 8> vectors; };
}  // namespace exit

namespace detail {
template <class Variant, class... Extra>
struct AppendAlternatives;
template <class... Ts, class... Extra>
struct AppendAlternatives<std::variant<Ts...>, Extra...> {
  using type = std::variant<Ts..., Extra...>;
};
}  // namespace detail

// Every exit KVM returns, then evmm's own: one flat variant, so a caller visits a step once.
using StepExit = detail::AppendAlternatives<VcpuExit, exit::Request, exit::Wakeup>::type;

inline StepExit to_step_exit(VcpuExit&& e) {
  return std::visit([](auto&& x) -> StepExit { return std::move(x); }, std::move(e));
}
inline StepExit to_step_exit(StepExit&& e) { return std::move(e); }

// What one run step returned, and how many exit requests it consumed: at least 1 for exit::Request,
// 0 or more for any other exit. Summed over all steps, requests equals the requests made.
struct RunStep {
  StepExit exit;
  uint64_t requests = 0;
};

}  // namespace evmm
