// Completing instructions the in-kernel emulator gives up on (KVM_INTERNAL_ERROR_EMULATION).
// On hosts where KVM emulates guest CPL0 code, some instructions are missing from its emulator;
// evmm finishes the common ones itself and resumes the guest.
#pragma once

#include "kvm/kvm_uapi.h"

#include <cstdint>
#include <span>
#include <string>
#include <vector>

#include "base/result.h"
#include "memory/guest_memory.h"
#include "vcpu/x86_fault.h"

namespace evmm {

enum class AssistKind : uint8_t {
  Int3, IntN, Clac, Stac, Fwait, Rdpid, Popcnt, Lzcnt, Tzcnt,
  // The FPU family (x86_fpu.h): memory forms take a register-indirect operand; vldmxcsr and
  // vstmxcsr count as ldmxcsr and stmxcsr.
  Ldmxcsr, Stmxcsr, Fxsave, Fxrstor, Xsave, Xsaveopt, Xrstor, Xgetbv, Xsetbv, X87,
  Count
};
const char* to_string(AssistKind k);

// Instruction bytes as a human reads them in a log line: "0f ae f0".
std::string format_bytes(std::span<const uint8_t> bytes);

// What an assist may consult besides the registers. An interface so unit tests can fake it.
class AssistEnv {
 public:
  virtual ~AssistEnv() = default;
  // Guest-virtual to guest-physical (KVM_TRANSLATE); EFAULT when not mapped. With paging off
  // the answer is the address itself.
  virtual Result<uint64_t> translate(uint64_t gva) = 0;
  virtual const GuestMemory& memory() = 0;
  virtual Result<uint64_t> read_msr(uint32_t index) = 0;
  // The guest's x87/SSE/AVX... state: the standard-format XSAVE area KVM hands out
  // (KVM_GET_XSAVE2), written back whole. Read per instruction: only the FPU assists need it.
  virtual Result<std::vector<uint8_t>> read_fpu() = 0;
  virtual Result<void> write_fpu(std::span<const uint8_t> area) = 0;
  // XCR0 (KVM_GET_XCRS / KVM_SET_XCRS); KVM refuses a value the guest's CPUID does not allow.
  virtual Result<uint64_t> read_xcr0() = 0;
  virtual Result<void> write_xcr0(uint64_t value) = 0;
};

struct CpuState {
  kvm_regs regs;
  kvm_sregs sregs;
};

// Executes the instruction in insn (the bytes KVM reported, starting at cs:rip; at most 15 are
// looked at) against cpu. On success, cpu holds the state after the instruction, ready to be
// written back with KVM_SET_REGS and KVM_SET_SREGS (int3/int n change cs and guest memory; the
// others only regs), and the result names what ran.
// On error neither cpu nor guest memory has changed, and the message names the bytes:
//   EOPNOTSUPP  not an instruction evmm completes ("unsupported instruction 0f ae f0"), or one in
//               a case it does not handle (CPL != 0, task gate, memory operand)
//   EINVAL      "truncated instruction ..." (fewer bytes than the instruction needs), or a fault
//               the CPU would raise (vector beyond the IDT limit, gate not present or of a bad type,
//               clac at CPL > 0); then error().fault() names it, for the caller to inject
//   EFAULT      a guest memory access (IDT, GDT, TSS, stack) did not reach guest RAM; with the #PF
//               in error().fault() when the page was not mapped
//   other       read_msr's error, for rdpid
x86::AssistResult<AssistKind> complete_instruction(std::span<const uint8_t> insn, CpuState& cpu, AssistEnv& env);

}  // namespace evmm
