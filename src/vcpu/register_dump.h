// What a VMM developer reads when a guest stops or hangs: one vCPU's registers, segments, control
// registers, pending events, MP state and the bytes at RIP, as one block of text in the shape of
// QEMU's `info registers`. Taken on the vCPU's own thread or while it is outside KVM_RUN (every
// KVM_GET_* waits for the vCPU to leave KVM_RUN).
//
// Errors: reading the registers or segments fails with the ioctl's errno. The optional parts (events,
// MP state, code bytes) never fail the snapshot: what could not be read is said in the block.
#pragma once

#include "kvm/kvm_uapi.h"  // first: it checks the kernel headers it wraps

#include <cstdint>
#include <optional>
#include <string>
#include <vector>

#include "base/result.h"
#include "kvm/vcpu_fd.h"
#include "memory/guest_memory.h"

namespace evmm {

struct VcpuSnapshot {
  kvm_regs regs{};
  kvm_sregs sregs{};
  std::optional<kvm_vcpu_events> events;
  std::optional<uint32_t> mp_state;  // KVM_MP_STATE_*
  uint64_t code_linear = 0;          // CS.base + RIP (wrapped to 32 bits outside long mode)
  std::vector<uint8_t> code;         // up to kCodeBytes from code_linear, fewer at an unmapped page
};

inline constexpr size_t kCodeBytes = 16;

// Reads the vCPU's state and the instruction bytes at RIP, through the guest's page tables.
Result<VcpuSnapshot> snapshot_vcpu(const VcpuFd& vcpu, const GuestMemory& mem);

// The block, one register group a line, ending in a newline; every line starts with "  ".
std::string format_register_dump(unsigned vcpu_id, const VcpuSnapshot& s);

}  // namespace evmm
