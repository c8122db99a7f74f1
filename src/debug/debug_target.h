// What the GDB stub (debug/gdb_stub.h) needs from the machine it debugs: threads (one per vCPU,
// numbered from 0 here; gdb sees them from 1), registers, guest-virtual memory, breakpoints and
// resumption. debug/vcpu_debugger.h implements it over KVM; the stub's tests use a fake.
//
// All calls but interrupt() are made with the machine stopped (every vCPU parked).
#pragma once

#include <array>
#include <cstdint>
#include <span>
#include <vector>

#include "base/result.h"

namespace evmm {

// The registers of gdb's i386:x86-64 architecture without a target description (gdb 13,
// `maint print registers`): rax rbx rcx rdx rsi rdi rbp rsp r8-r15 rip, then eflags and the six
// selectors as 32-bit values, then the x87 state, xmm0-15 and mxcsr. 536 bytes in a 'g' packet.
struct GdbRegisters {
  std::array<uint64_t, 17> gpr{};  // the 16 GPRs in gdb's order, then rip
  uint32_t eflags = 0;
  std::array<uint32_t, 6> seg{};              // cs ss ds es fs gs
  std::array<std::array<uint8_t, 10>, 8> st{};  // st0-st7, 80-bit
  std::array<uint32_t, 8> fpu_ctl{};            // fctrl fstat ftag fiseg fioff foseg fooff fop
  std::array<std::array<uint8_t, 16>, 16> xmm{};
  uint32_t mxcsr = 0;
};

enum class BreakKind { Software = 0, Hardware = 1, WriteWatch = 2, ReadWatch = 3, AccessWatch = 4 };

// Why the machine stopped, for the stop reply.
struct StopEvent {
  enum class Reason { Interrupt, SoftwareBreak, HardwareBreak, Watch, Step, Trap };
  unsigned thread = 0;
  Reason reason = Reason::Interrupt;
  BreakKind watch_kind = BreakKind::WriteWatch;  // Watch
  uint64_t watch_addr = 0;                       // Watch
};

// What one thread does when resumed.
enum class ResumeAction { Continue, Step };

class DebugTarget {
 public:
  virtual ~DebugTarget() = default;
  virtual unsigned thread_count() const = 0;
  virtual Result<GdbRegisters> read_registers(unsigned thread) = 0;
  // The GPRs, rip and eflags; other registers are read-only here (EPERM if changed).
  virtual Result<void> write_registers(unsigned thread, const GdbRegisters& regs) = 0;
  // Guest-virtual memory as thread's page tables map it; EFAULT for an unmapped page.
  virtual Result<void> read_memory(unsigned thread, uint64_t gva, std::span<uint8_t> out) = 0;
  virtual Result<void> write_memory(unsigned thread, uint64_t gva, std::span<const uint8_t> in) = 0;
  // ENOSPC when the four debug registers are taken; EINVAL for a length the hardware cannot watch.
  virtual Result<void> insert_breakpoint(BreakKind kind, uint64_t addr, uint64_t len) = 0;
  virtual Result<void> remove_breakpoint(BreakKind kind, uint64_t addr, uint64_t len) = 0;
  // Lets every thread run (all-stop: all resume together), each with its action.
  virtual Result<void> resume(std::span<const ResumeAction> actions) = 0;
  // Removes every breakpoint and lets the machine run free.
  virtual Result<void> detach() = 0;
  // Stops the machine for good.
  virtual void kill() = 0;
};

}  // namespace evmm
