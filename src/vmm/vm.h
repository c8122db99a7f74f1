// A VM assembled from a VmConfig (vmm/vm_builder.h): KVM VM, guest memory, platform devices, the
// loaded image and one thread per vCPU. start() runs it; wait() returns how it ended; pause() and
// resume() stop the vCPUs between run steps; S3 is vmm/sleep_policy.h's.
#pragma once

#include <atomic>
#include <chrono>
#include <functional>
#include <memory>
#include <mutex>
#include <optional>
#include <string>
#include <thread>
#include <vector>

#include "base/eventfd.h"
#include "bus/io_bus.h"
#include "debug/vcpu_debugger.h"
#include "devices/vm_stop_handler.h"
#include "event/interrupt_announcer.h"
#include "event/io_event_registry.h"
#include "event/irq_routing.h"
#include "kvm/memory_slot.h"
#include "kvm/system.h"
#include "kvm/vm_fd.h"
#include "memory/guest_memory.h"
#include "vcpu/vcpu.h"
#include "vmm/config.h"
#include "vmm/sleep_policy.h"
#include "vmm/vm_outcome.h"
#include "xen/xen_hvm.h"

namespace evmm {

class ConsoleInput;
class ConsoleOutput;
class PlatformDevices;
class VirtioDevices;

// Counters a user or a test can read after (or during) a run.
struct VmStats {
  uint64_t pio_exits = 0, mmio_exits = 0, unclaimed_pio = 0, unclaimed_mmio = 0;
  std::string virtio;  // one line of per-device counters (vmm/virtio_devices.h), empty without devices
  uint64_t discarded_errors = 0;  // failures logged and ignored where no caller could act (base/discard.h)
  std::array<uint64_t, static_cast<size_t>(AssistKind::Count)> assists{};
  std::array<uint64_t, static_cast<size_t>(x86::Vector::Count)> faults{};  // injected by the assists
};

class Vm final : public VmStopHandler {
 public:
  // A VM that cannot be built fails with the outcome the process should report.
  static tl::expected<std::unique_ptr<Vm>, VmOutcome> create(const System& kvm, const VmConfig& cfg);
  ~Vm() override;

  Result<void> start();
  // Readable once the VM has stopped; for a caller's poll loop.
  int stopped_fd() const { return stopped_.fd(); }
  // Joins every thread and returns how the VM ended. Call after start().
  VmOutcome wait();

  // VmStopHandler: a device asks to stop. Thread-safe; the first request wins.
  void request_stop(StopReason reason, int exit_status) override;
  // The host asks to stop (a signal, the API).
  void interrupt(std::string why);

  VmStats stats() const;
  const GuestMemory& memory() const { return mem_; }
  // Where a device (or an embedding program) registers ioeventfds for this VM.
  IoEventRegistry& io_events() { return *ioevents_; }
  // The KVM VM, for an embedder's own irqfds and ioctls. Lives as long as the Vm.
  const VmFd& vm_fd() const { return vm_; }
  // The vCPUs, for an embedder's per-vCPU calls (exit requests, exit fds, KVM state). index < vcpu_count().
  unsigned vcpu_count() const { return static_cast<unsigned>(vcpus_.size()); }
  Vcpu& vcpu(unsigned index) { return *vcpus_[index]; }
  // ---- pause and resume (DESIGN.md §5) ----
  // Every vCPU leaves guest mode through an exit request and parks between run steps; the KVM clock
  // is saved. EBUSY when already paused or not running, ETIMEDOUT (and the VM runs on) when a vCPU
  // did not park in time.
  Result<void> pause(std::chrono::milliseconds timeout = std::chrono::seconds(5));
  // Restores the KVM clock saved by pause() (KVM_SET_CLOCK), so the guest's kvmclock does not count
  // the pause, and lets the vCPUs run. Interrupts raised meanwhile wait in the irqchip and are
  // delivered. EINVAL when not paused.
  Result<void> resume();
  bool paused() const;

  // ---- suspend and wake (DESIGN.md §5, vcpu/vcpu.h) ----
  // An embedder that raises interrupts on its own irqfds or with KVM_SIGNAL_MSI calls notify() on
  // this afterwards, so that a suspended vCPU sees them; the platform's own lines already do.
  InterruptAnnouncer& interrupt_announcer() { return notifier_; }
  // The VMM's answer to each Wakeup (before start(); vCPU thread). Without one: Resume, except in
  // ACPI S3, where only a platform wake (wake(), or an RTC alarm with RTC_EN) resumes the VM.
  void set_wake_handler(Vcpu::WakeHandler handler) { sleep_->set_wake_handler(std::move(handler)); }
  // The platform wake button: ends ACPI S3 (the BSP resumes at the FACS waking vector); outside
  // S3, an API wake for every suspended vCPU. Any thread.
  void wake();
  // Every vCPU's register dump (vcpu/register_dump.h), taken without stopping the VM; a vCPU that
  // does not answer within timeout (a paused VM) gets a line saying so. Any thread but a vCPU's.
  std::string dump_vcpus(std::chrono::milliseconds timeout = std::chrono::seconds(1));

  // The Xen HVM emulation, when the config asked for it (else nullptr): its event channels are
  // where an embedder binds backend ports. A backend handle's raise() answers ENOTCONN once the Vm
  // is gone; stop raising before destroying the Vm, as a raise that races the destructor is not safe.
  XenHvm* xen() { return xen_.get(); }

  // The debugger's side of the vCPUs when the config asked for one (VmConfig::debugger), else
  // nullptr: a gdb server (debug/gdb_server.h) serves it.
  VcpuDebugger* debugger() { return debugger_.get(); }
  // The exit status once the VM has stopped (for the gdb server's last reply).
  std::optional<int> exit_status();

  // The GSI routing table (PC wiring plus MSI routes).
  IrqRoutingTable& irq_routing() { return *routing_; }

 private:
  friend class VmBuilder;
  Vm(VmConfig cfg, VmFd vm, GuestMemory mem, EventFd stopped);
  void finish(VmOutcome outcome);

  VmConfig cfg_;
  VmFd vm_;
  GuestMemory mem_;
  // After vm_ and mem_, so each slot leaves KVM before the VM fd closes and the memory is unmapped.
  std::vector<MemorySlot> slots_;
  IoBus pio_{"pio"};
  IoBus mmio_{"mmio"};
  std::unique_ptr<IoEventRegistry> ioevents_;
  std::unique_ptr<IrqRoutingTable> routing_;
  std::unique_ptr<ConsoleOutput> out_;
  // Before devices_, so destroyed after it: its timers run on the devices' event loop, which stops
  // in ~PlatformDevices. It writes console_io to out_.
  std::unique_ptr<XenHvm> xen_;
  // Before devices_, so destroyed after it: the PM's sleep handler and the RTC alarm call it.
  std::unique_ptr<SleepPolicy> sleep_;
  std::unique_ptr<PlatformDevices> devices_;
  // After devices_, so destroyed before it: its transports live on the devices' event loop.
  std::unique_ptr<VirtioDevices> virtio_;
  std::unique_ptr<ConsoleInput> in_;
  // Before vcpus_, so destroyed after them: their hooks point into it.
  std::unique_ptr<VcpuDebugger> debugger_;
  std::vector<std::unique_ptr<Vcpu>> vcpus_;
  std::vector<std::thread> threads_;

  InterruptAnnouncer notifier_;
  std::unique_ptr<PauseGate> gate_;
  mutable std::mutex pause_mu_;
  std::optional<kvm_clock_data> paused_clock_;  // set while paused

  std::atomic<bool> stop_{false};
  std::atomic<uint64_t> discarded_errors_{0};  // the Vm's own; VmStats adds the vCPUs'
  EventFd stopped_;
  std::mutex outcome_mu_;
  std::optional<VmOutcome> outcome_;
};

}  // namespace evmm
