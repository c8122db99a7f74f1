#include "vmm/sleep_policy.h"

#include "base/discard.h"
#include "base/log.h"
#include "boot/acpi_lookup.h"
#include "devices/acpi_pm.h"
#include "vcpu/cpu_setup.h"
#include "vmm/exit_status.h"

namespace evmm {

void SleepPolicy::wake() {
  if (s3_.load()) {
    s3_wake_.store(true);
    vcpus_.front()->wake();
    return;
  }
  for (auto& v : vcpus_)
    if (v->suspended()) v->wake();
}

void SleepPolicy::on_rtc_alarm() {
  if (s3_.load() && (pm_.enables() & AcpiPm::kRtcSts)) wake();
}

void SleepPolicy::on_sleep(uint8_t slp_typ) {
  if (slp_typ != 1) {
    LOG_WARN("guest asked for sleep type {}, which the DSDT does not declare; ignored", slp_typ);
    return;
  }
  switch (on_suspend_) {
    case OnSuspend::Ignore:
      LOG_INFO("guest asked for S3; --on-suspend=ignore");
      return;
    case OnSuspend::Exit:
      return finish_({VmOutcome::Kind::Suspended, exit_status::kSuspended, "guest suspended to ACPI S3"});
    case OnSuspend::Suspend:
      break;
  }
  LOG_INFO("guest entered ACPI S3: every vCPU suspended until a wake event");
  s3_wake_.store(false);
  s3_.store(true);
  for (auto& v : vcpus_)
    discard_error(v->set_mp_state(MpState::Suspended), discarded_errors_, "S3: suspending vCPU {}", v->id());
}

WakeDecision SleepPolicy::on_wakeup(Vcpu& vcpu, const exit::Wakeup& w) {
  if (!s3_.load()) return user_wake_handler_ ? user_wake_handler_(vcpu, w) : WakeDecision::Resume;
  // In S3 only the platform wakes the machine: interrupts stay pending and suppressed (sticky).
  if (vcpu.id() != 0 || !s3_wake_.exchange(false)) return WakeDecision::StaySuspended;
  if (auto r = resume_from_s3(vcpu); !r) {
    finish_({VmOutcome::Kind::GuestError, exit_status::kGuestFault, fmt::format("S3 resume: {}", r.error().message())});
    return WakeDecision::StaySuspended;
  }
  return WakeDecision::Resume;
}

Result<void> SleepPolicy::resume_from_s3(Vcpu& bsp) {
  // As firmware does (ACPI 6.0, 7.4.2 and 16.3): the waking vector, in real mode, with CS = vector
  // >> 4 and IP = vector & 0xF. The APs wait for the guest's INIT/SIPI, as after a reset.
  uint64_t facs = TRY(boot::find_facs(mem_));
  uint32_t vector = TRY(mem_.read_obj<uint32_t>(GuestAddress(facs + boot::kFacsWakingVectorOffset)));
  if (vector == 0 || vector >= 0x100000)
    return make_error(EINVAL, "the FACS waking vector {:#x} is not a real-mode address", vector);
  TRY(set_real_mode_state(bsp.fd(), static_cast<uint16_t>(vector >> 4), static_cast<uint16_t>(vector & 0xf)));
  for (auto& v : vcpus_) {
    if (v.get() == &bsp) continue;
    // The AP's thread is in its suspended wait, not in KVM_RUN, so its vCPU ioctls do not block.
    TRY(set_init_registers(v->fd()));
    TRY(v->set_mp_state(MpState::Stopped));
    v->wake();  // ends its wait; the Wakeup finds it runnable already
  }
  pm_.raise_status(AcpiPm::kWakSts);
  s3_.store(false);
  LOG_INFO("guest woke from ACPI S3 at waking vector {:#x}", vector);
  return {};
}

}  // namespace evmm
