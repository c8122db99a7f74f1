// The hypercall transport of evmm's userspace Xen: the page of stubs a guest calls into, and the
// registers each guest width passes its arguments in.
//
// Xen's HVM hypercall page holds one 32-byte stub per hypercall; the guest calls
// hypercall_page + 32 * nr. Hardware Xen uses vmcall/vmmcall, which KVM keeps for itself, so evmm's
// stubs trap to userspace with a port read instead:
//   mov $nr, %eax ; in $kXenHypercallPort, %eax ; [movslq %eax, %rax] ; ret
// The VMM reads the arguments from the registers at the exit (KVM_GET_REGS) and answers the read
// with the result, which KVM writes into EAX when the vCPU resumes. The 64-bit stub sign-extends it
// into RAX, so negative Xen errnos arrive as longs; results are therefore 32-bit values, which
// every hypercall evmm implements fits. Only RAX changes: the arguments are left as they were.
// The stub is written for the mode the guest is in when it installs the page; the ABI is chosen at
// each call from the mode it is in then.
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

// Fills one 4 KiB host buffer with 128 stubs for the given width, for copying into the guest's page;
// the bytes after each stub are int3, as in Xen's pages.
void write_hypercall_page(std::span<uint8_t, kXenPageSize> page, XenWidth width);

}  // namespace evmm
