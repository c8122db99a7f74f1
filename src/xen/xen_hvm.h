// Xen HVM emulation in userspace (DESIGN.md §3, seed 002): a guest built for Xen finds Xen by
// CPUID, installs a hypercall page through an MSR, maps shared_info, registers vcpu_info, and uses
// event channels, timers and the console, on a host kernel without Xen support.
//
// The pieces:
//   CPUID    xen/xen_cpuid.h: the leaves at 0x40000000 (or 0x40000100).
//   MSR      the guest's write of the hypercall page's address to the MSR from CPUID is filtered
//            (KVM_X86_SET_MSR_FILTER, KVM_CAP_X86_USER_SPACE_MSR) and reaches on_msr() on its vCPU
//            thread, which writes the stubs of xen/hypercall_abi.h there (xen/hypercall_port.cpp).
//   calls    every stub reads kXenHypercallPort; the read runs hypercall() on the calling vCPU's
//            thread, with guest pointers translated page by page (xen/guest_va.h). Each family
//            of hypercalls is one file, xen/hypercall_<family>.cpp.
//   events   xen/evtchn.h holds the port table; its pages are guest memory (shared_info wherever
//            the guest put it, vcpu_info wherever each vCPU registered it: xen/shared_pages.h),
//            reached only through checked slices (memory/guest_slice.h). The upcall is an MSI
//            to the target vCPU's APIC ID through the in-kernel LAPIC, so the guest's handler ends
//            with an EOI, for the per-domain callback vector too (Xen injects that one without the
//            LAPIC; a guest that does not EOI it blocks its lower-priority interrupts here).
//            IPIs, loopback ports and VIRQs raised by a hypercall are delivered by the calling
//            vCPU's thread; nothing else is woken (xen/upcall.h).
//   timers   per-vCPU singleshot timers are timerfds on the device event loop; they raise VIRQ_TIMER
//            (xen/xen_timers.h).
//   time     Xen system time is nanoseconds since the VM was created, on CLOCK_MONOTONIC; each
//            vcpu_info's vcpu_time_info maps the guest TSC onto it (xen/xen_time.h).
//
// Where the host kernel has Xen support (KVM_CAP_XEN_HVM with hypercall interception, shared_info
// and EVTCHN_SEND), install() chooses the kernel path at run time instead: KVM_XEN_HVM_CONFIG makes
// KVM own the hypercall MSR and page and hand hypercalls over as KVM_EXIT_XEN, which run through
// the same hypercall() and the same port table; the table commits the ports the kernel should
// deliver itself (IPIs, loopback, backend eventfds) as KVM_XEN_ATTR_TYPE_EVTCHN entries, and
// shared_info and the callback vector are handed to KVM as they are set. Hosts without the
// capability (such as the development hosts) never take it, so it is built but not exercised there.
#pragma once

#include <atomic>
#include <cstdint>
#include <functional>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "base/result.h"
#include "bus/io_bus.h"
#include "devices/byte_sink.h"
#include "devices/vm_stop_handler.h"
#include "event/event_loop.h"
#include "event/interrupt_announcer.h"
#include "kvm/system.h"
#include "kvm/vcpu_exit.h"
#include "kvm/vm_fd.h"
#include "memory/guest_memory.h"
#include "xen/evtchn.h"
#include "xen/guest_va.h"
#include "xen/hypercall_abi.h"
#include "xen/shared_pages.h"
#include "xen/upcall.h"
#include "xen/xen_config.h"
#include "xen/xen_cpuid.h"
#include "xen/xen_time.h"
#include "xen/xen_timers.h"

namespace evmm {

class Vcpu;
struct VcpuHooks;

struct XenStats {
  uint64_t hypercalls = 0;
  uint64_t unknown_hypercalls = 0;  // answered -ENOSYS
  uint64_t faults = 0;              // answered -EFAULT: a guest pointer that did not translate
  uint64_t console_bytes = 0;
  uint64_t bad_msr_writes = 0;      // hypercall page writes refused with #GP
  uint64_t upcalls = 0;             // upcall vectors injected
  uint64_t lost_upcalls = 0;        // an upcall for a vCPU with no vector set
  uint64_t timer_fires = 0;
  uint64_t discarded_errors = 0;    // failures logged and ignored where no caller could act (base/discard.h)
  EvtchnStats evtchn;
};

enum class XenWait { Done, Readable, TimedOut, Kicked };

// What a hypercall needs from the vCPU that made it. The VMM's is a Vcpu; tests and the fuzzer
// supply their own.
class XenCaller {
 public:
  virtual ~XenCaller() = default;
  virtual uint32_t vcpu() const = 0;
  virtual XenWidth width() const = 0;
  virtual const GuestVa& va() const = 0;
  // Makes the caller's vCPU halt in KVM once the hypercall returns, as a HLT would (SCHEDOP_block).
  virtual Result<void> halt() = 0;
  // One sleep on the caller's thread: Done if done() holds (checked first), else until fd is
  // readable (not consumed), the deadline (host CLOCK_MONOTONIC ns, 0 = none) passes, or the vCPU
  // is asked to exit (its exit request stays pending).
  virtual Result<XenWait> wait(int fd, uint64_t deadline_mono_ns, const std::function<bool()>& done) = 0;
};

class XenHvm {
 public:
  struct Env {
    const VmFd* vm = nullptr;  // KVM_SIGNAL_MSI for upcalls, the MSR filter; null in unit tests
    const GuestMemory* mem = nullptr;
    uint32_t vcpus = 1;
    uint64_t tsc_khz = 0;      // the guest TSC's rate (KVM_GET_TSC_KHZ)
    ByteSink console;          // console_io output
    VmStopHandler* control = nullptr;  // SCHEDOP_shutdown
    InterruptAnnouncer* notifier = nullptr;
    // The VM's vCPU by index (nullptr: none), for hypercalls that arrive as reads of the port.
    std::function<Vcpu*(uint32_t index)> vcpu{};
    // Replaces KVM_SIGNAL_MSI (unit tests): called with the vCPU and vector of each upcall.
    std::function<void(uint32_t vcpu, uint8_t vector)> inject_override{};
  };

  static Result<std::unique_ptr<XenHvm>> create(Env env, XenConfig cfg);
  ~XenHvm();
  XenHvm(const XenHvm&) = delete;
  XenHvm& operator=(const XenHvm&) = delete;

  const XenConfig& config() const { return cfg_; }
  // The CPUID leaves for one vCPU (before it runs).
  void add_cpuid(CpuidTable& table, uint32_t vcpu) const { add_xen_cpuid_leaves(table, cfg_.cpuid, vcpu); }
  // Claims the hypercall port on pio and makes KVM hand the hypercall MSR's writes to userspace.
  Result<void> install(IoBus& pio);
  // Fills a vCPU's hooks that Xen owns: filtered MSR accesses (the hypercall page) and, on the
  // kernel path, hypercall exits. Before the vCPU is built.
  void add_vcpu_hooks(VcpuHooks& hooks);
  // Whether install() chose the kernel's Xen support.
  bool kernel_path() const { return kernel_path_; }
  // What the kernel path needs of KVM_CAP_XEN_HVM's flags.
  static bool kernel_support_usable(int xen_hvm_flags);
  // The timers' subscriber, for the device event loop.
  std::shared_ptr<EventSubscriber> timers();

  // Anchors Xen system time: guest TSC tsc at host CLOCK_MONOTONIC mono_ns (read together on
  // vCPU 0 before it runs). Until then system time reads 0 at every TSC value.
  void set_time_reference(uint64_t tsc, uint64_t mono_ns);

  EventChannels& event_channels() { return *evtchn_; }
  XenStats stats() const;

  // ---- the guest interface ----
  // A filtered MSR access (vCPU thread). False: #GP.
  bool on_msr(uint32_t vcpu, XenWidth mode, bool write, uint32_t index, uint64_t value);
  // One hypercall; returns the value for the guest's RAX (a negative Xen errno on failure).
  int64_t hypercall(XenCaller& caller, const HypercallArgs& call);

  // Xen system time now, in ns.
  uint64_t system_time_ns() const;

 private:
  struct VcpuState;
  class HypercallPort;
  XenHvm(Env env, XenConfig cfg);

  // The hypercall families.
  int64_t xen_version(XenCaller& c, uint64_t cmd, uint64_t arg);
  int64_t console_io(XenCaller& c, uint64_t cmd, uint64_t count, uint64_t buffer);
  int64_t sched_op(XenCaller& c, uint64_t cmd, uint64_t arg);
  int64_t memory_op(XenCaller& c, uint64_t cmd, uint64_t arg);
  int64_t hvm_op(XenCaller& c, uint64_t cmd, uint64_t arg);
  int64_t vcpu_op(XenCaller& c, uint64_t cmd, uint64_t vcpuid, uint64_t arg);
  int64_t event_channel_op(XenCaller& c, uint64_t cmd, uint64_t arg);
  int64_t set_timer(XenCaller& c, uint64_t timeout_abs_ns);
  int64_t poll(XenCaller& c, uint64_t arg);
  int64_t block(XenCaller& c);

  void latch_width(XenWidth w);
  void on_pending(uint32_t vcpu, uint32_t port);
  void reassert_upcall(uint32_t vcpu) { upcalls_->reassert(vcpu, *pages_, pages_->layout()); }
  void write_time(uint32_t vcpu);
  void arm_timer(uint32_t vcpu, uint64_t timeout_abs_ns) { timers_->arm(vcpu, timeout_abs_ns); }

  Env env_;
  XenConfig cfg_;
  std::unique_ptr<XenSharedPages> pages_;
  std::unique_ptr<XenUpcalls> upcalls_;
  std::vector<std::unique_ptr<VcpuState>> vcpus_;
  std::optional<EventChannels> evtchn_;
  std::shared_ptr<XenTimers> timers_;
  std::unique_ptr<XenClock> clock_;
  bool kernel_path_ = false;
  Result<void> commit_kernel_ports(std::span<const kvm_xen_hvm_attr> ports);

  struct Counters;
  std::unique_ptr<Counters> counters_;
};

}  // namespace evmm
