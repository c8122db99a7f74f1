// Why KVM_RUN returned, as a typed value: only what KVM itself returns (evmm's own step results are
// in vcpu/run_step.h). Spans point into kvm_run and live until the next run.
#pragma once

#include <linux/types.h>

#include <cstdint>
#include <array>
#include <span>
#include <variant>

namespace evmm {

namespace exit {
// Port I/O: data holds count accesses of size bytes each (count > 1 for rep ins/outs).
struct IoIn { uint16_t port; uint8_t size; std::span<uint8_t> data; };  // fill data
struct IoOut { uint16_t port; uint8_t size; std::span<const uint8_t> data; };
struct MmioRead { uint64_t addr; std::span<uint8_t> data; };       // fill data
struct MmioWrite { uint64_t addr; std::span<const uint8_t> data; };
struct Hlt {};
struct Shutdown {};                                                 // triple fault
struct Interrupted {};                                              // EINTR or immediate_exit
struct SystemEvent { uint32_t type; std::span<const __u64> data; };
struct FailEntry { uint64_t reason; uint32_t cpu; };
struct InternalError { uint32_t suberror; std::span<const __u64> data; };
// KVM_INTERNAL_ERROR_EMULATION with the bytes of the instruction KVM could not emulate.
struct EmulationFailure { std::span<const uint8_t> insn; };
struct Unknown { uint32_t reason; };
// KVM_EXIT_DIRTY_RING_FULL: the vCPU's dirty ring (kvm/dirty_ring.h) has no room; harvest and reset
// the rings, then run it again.
struct DirtyRingFull {};
// KVM_EXIT_X86_RDMSR / KVM_EXIT_X86_WRMSR: an access to an MSR the VMM filters
// (KVM_X86_SET_MSR_FILTER with KVM_MSR_EXIT_REASON_FILTER). value is what a WRMSR writes; a RDMSR
// stores its result through *result. Setting *error makes the guest take #GP instead.
struct Msr { bool write; uint32_t index; uint64_t value; __u64* result; __u8* error; };
// KVM_EXIT_XEN of type KVM_EXIT_XEN_HCALL: a Xen hypercall the kernel intercepted for the VMM
// (KVM_XEN_HVM_CONFIG_INTERCEPT_HCALL). Store the result through *result.
struct XenHypercall { bool longmode; uint32_t cpl; uint64_t nr; std::array<uint64_t, 6> args; __u64* result; };
// KVM_EXIT_DEBUG: a #DB or #BP the VMM asked for with KVM_SET_GUEST_DEBUG. exception is the vector
// (1 or 3), pc the linear address of the instruction, dr6/dr7 the debug status and control.
struct Debug { uint32_t exception; uint64_t pc; uint64_t dr6; uint64_t dr7; };
}  // namespace exit

using VcpuExit = std::variant<exit::IoIn, exit::IoOut, exit::MmioRead, exit::MmioWrite, exit::Hlt, exit::Shutdown,
                              exit::Interrupted, exit::SystemEvent, exit::FailEntry, exit::InternalError,
                              exit::EmulationFailure, exit::Unknown, exit::Msr, exit::XenHypercall, exit::Debug,
                              exit::DirtyRingFull>;

}  // namespace evmm
