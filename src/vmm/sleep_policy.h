// ACPI sleep policy (DESIGN.md §5): what a guest's S3 request does under --on-suspend, which wakeups
// end S3 (only a platform wake: the wake button, or an RTC alarm the guest enabled), and the resume
// at the FACS waking vector. Outside S3 every Wakeup goes to the embedder's handler.
#pragma once

#include <atomic>
#include <cstdint>
#include <functional>
#include <memory>
#include <vector>

#include "base/result.h"
#include "memory/guest_memory.h"
#include "vcpu/vcpu.h"
#include "vmm/config.h"
#include "vmm/vm_outcome.h"

namespace evmm {

class AcpiPm;

class SleepPolicy {
 public:
  // Ends the VM: S3 under --on-suspend=exit, or a resume that failed.
  using Finish = std::function<void(VmOutcome)>;
  // Every reference must outlive the policy's last call; vcpus may still be empty here.
  SleepPolicy(OnSuspend on_suspend, const GuestMemory& mem, const std::vector<std::unique_ptr<Vcpu>>& vcpus,
              AcpiPm& pm, Finish finish)
      : on_suspend_(on_suspend), mem_(mem), vcpus_(vcpus), pm_(pm), finish_(std::move(finish)) {}

  // The embedder's answer to each Wakeup outside S3 (before start()); without one: Resume.
  void set_wake_handler(Vcpu::WakeHandler handler) { user_wake_handler_ = std::move(handler); }
  // ACPI PM1a_CNT with SLP_EN and a sleep type other than S5 (vCPU thread).
  void on_sleep(uint8_t slp_typ);
  // Every vCPU's Wakeup (vCPU thread).
  WakeDecision on_wakeup(Vcpu& vcpu, const exit::Wakeup& w);
  // The platform wake button: ends S3; outside S3, an API wake for every suspended vCPU. Any thread.
  void wake();
  // An RTC alarm: wakes the VM from S3 when the guest enabled it (PM1_EN.RTC_EN). Event-loop thread.
  void on_rtc_alarm();
  // Results it could not act on (a vCPU that refused to suspend), logged and counted.
  uint64_t discarded_errors() const { return discarded_errors_.load(std::memory_order_relaxed); }

 private:
  // The BSP's part of leaving S3: real mode at the FACS waking vector; APs back to wait-for-SIPI.
  Result<void> resume_from_s3(Vcpu& bsp);

  OnSuspend on_suspend_;
  const GuestMemory& mem_;
  const std::vector<std::unique_ptr<Vcpu>>& vcpus_;
  AcpiPm& pm_;
  Finish finish_;
  Vcpu::WakeHandler user_wake_handler_;
  std::atomic<bool> s3_{false};       // the guest is in S3
  std::atomic<bool> s3_wake_{false};  // a platform wake for S3 is pending
  std::atomic<uint64_t> discarded_errors_{0};
};

}  // namespace evmm
