// The DebugTarget of a VM's vCPUs (debug/debug_target.h) over KVM: all-stop control through a gate
// of its own, KVM_SET_GUEST_DEBUG for breakpoints and single steps, KVM_TRANSLATE for memory.
//
// Rules:
//   - The gate starts closed: vCPUs park before their first KVM_RUN until gdb resumes them, as
//     QEMU's -S does. A stop (a debug exit on a vCPU thread, or interrupt()) closes it and makes
//     every vCPU exit; stop_fd() then becomes readable and take_stop() waits until all are parked.
//   - While stopped, only the server thread calls the DebugTarget methods, whose vCPU ioctls are
//     safe then because no vCPU is inside KVM_RUN.
//   - Only the first stop between two resumes is reported. A vCPU whose breakpoint hit was not
//     reported is still at the int3 and hits it again when resumed (gdb removes breakpoints while
//     stopped, so it then runs the original instruction).
//   - release() opens the gate for good: the VM is stopping and parked vCPUs must leave.
//
// What KVM on this nested (PVM) host does with guest debugging (single steps and instruction
// breakpoints work, int3 and data breakpoints do not) is measured and described in
// vcpu_debugger.cpp and the README of debug/.
#pragma once

#include <array>
#include <functional>
#include <map>
#include <mutex>
#include <optional>
#include <vector>

#include "base/eventfd.h"
#include "debug/debug_target.h"
#include "memory/guest_memory.h"
#include "vcpu/pause_gate.h"
#include "vcpu/vcpu.h"

namespace evmm {

struct DebuggerStats {
  std::atomic<uint64_t> debug_exits{0};
  std::atomic<uint64_t> unreported_stops{0};  // stops after the first of a round
  std::atomic<uint64_t> rewound_int3{0};      // #BP exits whose pc was past the int3 (see vcpu_debugger.cpp)
};

class VcpuDebugger final : public DebugTarget {
 public:
  // kvm_flags: KVM_CAP_SET_GUEST_DEBUG2's answer, the KVM_GUESTDBG_* flags this KVM takes (0: unknown).
  static Result<std::unique_ptr<VcpuDebugger>> create(unsigned vcpus, const GuestMemory& mem, uint32_t kvm_flags = 0);

  // Wires the debugger into a vCPU's hooks (before it is built).
  void add_vcpu_hooks(VcpuHooks& hooks);
  // The built vCPUs, in id order, before any runs.
  void attach(std::vector<Vcpu*> vcpus) { vcpus_ = std::move(vcpus); }
  // What kill() does: stop the VM (the Vm's own stop path).
  void set_kill(std::function<void()> kill) { kill_ = std::move(kill); }

  // Readable while a stop is waiting for take_stop().
  int stop_fd() const { return stop_event_.fd(); }
  // Stops every vCPU as gdb's Ctrl-C asks (any thread).
  void interrupt();
  // Waits until every vCPU is parked, then returns the stop. ENOENT if none is pending, ETIMEDOUT.
  Result<StopEvent> take_stop(std::chrono::milliseconds timeout);
  // Opens the gate for good (the VM stops); stops after this are ignored.
  void release();
  const DebuggerStats& stats() const { return stats_; }

  unsigned thread_count() const override { return static_cast<unsigned>(vcpus_.size()); }
  Result<GdbRegisters> read_registers(unsigned thread) override;
  Result<void> write_registers(unsigned thread, const GdbRegisters& regs) override;
  Result<void> read_memory(unsigned thread, uint64_t gva, std::span<uint8_t> out) override;
  Result<void> write_memory(unsigned thread, uint64_t gva, std::span<const uint8_t> in) override;
  Result<void> insert_breakpoint(BreakKind kind, uint64_t addr, uint64_t len) override;
  Result<void> remove_breakpoint(BreakKind kind, uint64_t addr, uint64_t len) override;
  Result<void> resume(std::span<const ResumeAction> actions) override;
  Result<void> detach() override;
  void kill() override;

 private:
  VcpuDebugger(unsigned vcpus, const GuestMemory& mem, EventFd stop_event, uint32_t kvm_flags);
  // vCPU thread: a KVM_EXIT_DEBUG.
  void on_debug_exit(Vcpu& v, const exit::Debug& d);
  // Records e unless a stop is pending, closes the gate and makes every vCPU exit.
  void record_stop(const StopEvent& e);
  // Each page of [gva, gva + len) as a guest-physical range, through thread's page tables.
  template <class Fn>
  Result<void> for_each_page(unsigned thread, uint64_t gva, size_t len, Fn&& fn);
  Result<void> apply_debug(std::span<const ResumeAction> actions);
  Result<void> check_thread(unsigned thread) const;

  struct HwSlot {
    bool used = false;
    BreakKind kind{};
    uint64_t addr = 0, len = 0;
  };

  const GuestMemory& mem_;
  const uint32_t kvm_flags_;
  EventFd stop_event_;
  PauseGate gate_;
  std::vector<Vcpu*> vcpus_;
  std::function<void()> kill_;
  std::mutex mu_;  // pending_, released_ and the breakpoint tables the vCPU threads read
  std::optional<StopEvent> pending_;
  bool released_ = false;
  std::map<uint64_t, uint8_t> sw_;  // software breakpoints: address -> the byte the int3 replaced
  std::array<HwSlot, 4> hw_{};      // DR0-DR3
  DebuggerStats stats_;
};

}  // namespace evmm
