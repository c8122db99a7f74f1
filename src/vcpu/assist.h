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
  Int3, IntN, Int1, Clac, Stac, Fwait, Rdpid, Popcnt, Lzcnt, Tzcnt,
  Cmpxchg8b, Cmpxchg16b, Clflush, Clflushopt, Clwb, Invpcid, Iret, Lsl, Lar,
  // The FPU family (x86_fpu.h); vldmxcsr and vstmxcsr count as ldmxcsr and stmxcsr.
  Ldmxcsr, Stmxcsr, Fxsave, Fxrstor, Xsave, Xsaveopt, Xrstor, Xgetbv, Xsetbv, X87,
  // Replayed natively on the host (x86_simd.h), by encoding: legacy SSE (SSE..SSE4.2, AES-NI,
  // PCLMULQDQ, SHA, GFNI), VEX vector (AVX, AVX2, FMA, F16C, VAES...), EVEX (AVX-512), and the
  // general-purpose BMI1/BMI2/ADX instructions.
  Sse, Avx, Avx512, Bmi,
  Count
};
const char* to_string(AssistKind k);

// Instruction bytes as a human reads them in a log line: "0f ae f0".
std::string format_bytes(std::span<const uint8_t> bytes);

// What an assist may consult besides the registers. An interface so unit tests can fake it.
class AssistEnv {
 public:
  virtual ~AssistEnv() = default;
  // Guest-physical memory; assists reach it through their own page walk (x86_paging.h).
  virtual const GuestMemory& memory() = 0;
  // MAXPHYADDR of the guest (CPUID 0x80000008 EAX[7:0]): entry bits above it are reserved.
  virtual unsigned physical_address_bits() = 0;
  // Drops every cached translation of the vCPU (invpcid), taking effect before it runs again.
  virtual Result<void> flush_tlb() = 0;
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
// written back with KVM_SET_REGS and KVM_SET_SREGS (int3/int n/int1 change cs and guest memory,
// iret the segment registers, cmpxchg8b/16b guest memory; the others only regs), and the result
// names what ran. Memory operands go through the guest's segments and page tables (x86_operand.h, x86_paging.h), which
// may set accessed and dirty flags in the tables even when the instruction then faults.
// On error neither cpu nor guest memory has changed, and the message names the bytes:
//   EOPNOTSUPP  not an instruction evmm completes ("unsupported instruction 0f ae f0"), or one in
//               a case it does not handle (CPL != 0 for int n, task gate, 32-bit or PAE paging)
//   EINVAL      "truncated instruction ..." (fewer bytes than the instruction needs), or a fault
//               the CPU would raise (#GP, #SS, #NP, #UD: a bad gate or segment, a non-canonical
//               or out-of-limit operand, a misaligned cmpxchg16b, a refused LOCK, clac at CPL > 0);
//               then error().fault() names it, for the caller to inject
//   EFAULT      a guest memory access did not reach guest RAM; with the #PF (error code and CR2)
//               in error().fault() when the page walk faulted
//   EAGAIN      the guest's page tables kept changing under the walk
//   other       read_msr's error, for rdpid; flush_tlb's, for invpcid
x86::AssistResult<AssistKind> complete_instruction(std::span<const uint8_t> insn, CpuState& cpu, AssistEnv& env);

}  // namespace evmm
