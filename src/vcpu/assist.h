// Completing instructions the in-kernel emulator gives up on (KVM_INTERNAL_ERROR_EMULATION).
// On hosts where KVM emulates guest CPL0 code, some instructions are missing from its emulator;
// evmm finishes the common ones itself and resumes the guest.
#pragma once

#include <linux/kvm.h>

#include <cstdint>
#include <span>

#include "base/result.h"
#include "memory/guest_memory.h"

namespace evmm {

enum class AssistKind : uint8_t { Int3, IntN, Clac, Stac, Fwait, Rdpid, Popcnt, Lzcnt, Tzcnt, Count };
const char* to_string(AssistKind k);

// What an assist may consult besides the registers. An interface so unit tests can fake it.
class AssistEnv {
 public:
  virtual ~AssistEnv() = default;
  // Guest-virtual to guest-physical (KVM_TRANSLATE); EFAULT when not mapped.
  virtual Result<uint64_t> translate(uint64_t gva) = 0;
  virtual const GuestMemory& memory() = 0;
  virtual Result<uint64_t> read_msr(uint32_t index) = 0;
};

struct CpuState {
  kvm_regs regs;
  kvm_sregs sregs;
};

// Executes the instruction in insn (the bytes KVM reported, starting at cs:rip) against cpu.
// On success, cpu holds the state after the instruction, ready to be written back.
// EOPNOTSUPP: not an instruction evmm completes (the VM must stop); EFAULT: a guest memory
// access failed (IDT, stack); EINVAL: a malformed gate or descriptor.
Result<AssistKind> complete_instruction(std::span<const uint8_t> insn, CpuState& cpu, AssistEnv& env);

}  // namespace evmm
