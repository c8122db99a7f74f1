// The hypercall transport of evmm's userspace Xen: the page of stubs a guest calls into, and the
// registers each guest width passes its arguments in.
//
// Xen's HVM hypercall page holds one 32-byte stub per hypercall; the guest calls
// hypercall_page + 32 * nr. Hardware Xen uses vmcall/vmmcall, which KVM keeps for itself, so evmm's
// stubs trap to userspace with a port write instead:
//   mov $nr, %eax ; out %eax, $kXenHypercallPort ; ret
// Every byte means the same in 16-, 32- and 64-bit code (no REX prefix, which a 32-bit
// compatibility-mode segment of a 64-bit guest would decode as dec), so one page serves a guest that
// calls from any mode. The VMM reads the arguments from the registers at the exit (KVM_GET_REGS),
// chooses the ABI from the mode the vCPU is in at that call, and writes the result into RAX itself
// (KVM_SET_REGS) before KVM completes the write: sign-extended to 64 bits for a 64-bit caller, so
// negative Xen errnos arrive as longs; the low 32 bits for a 32-bit one. Results are 32-bit values,
// which every hypercall evmm implements fits. Only RAX changes: the arguments stay as they were.
#pragma once

#include <array>
#include <cstdint>
#include <span>

#include "kvm/kvm_uapi.h"
#include "xen/xen_abi.h"

namespace evmm {

// A port no PC device uses, below 0x100 so that the stub can name it in an immediate.
constexpr uint16_t kXenHypercallPort = 0xe4;
constexpr uint32_t kXenHypercallStubSize = 32;
constexpr uint32_t kXenPageSize = 4096;

struct HypercallArgs {
  uint64_t nr;
  std::array<uint64_t, 5> a;
};

// 64-bit: nr in rax, arguments in rdi, rsi, rdx, r10, r8. 32-bit: eax; ebx, ecx, edx, esi, edi
// (upper halves ignored).
HypercallArgs decode_hypercall(const kvm_regs& regs, XenWidth width);

// Fills one 4 KiB host buffer with 128 stubs, for copying into the guest's page; the bytes after
// each stub are int3, as in Xen's pages. The same bytes serve every mode.
void write_hypercall_page(std::span<uint8_t, kXenPageSize> page);

// What RAX holds after a hypercall that returned result, for a caller of the given width.
uint64_t hypercall_rax(int64_t result, XenWidth width);

}  // namespace evmm
