// A KVM vCPU file descriptor and its mapped kvm_run: one method per ioctl, no policy.
#pragma once

#include "kvm/kvm_uapi.h"

#include <cstdint>
#include <span>
#include <vector>

#include "base/fd.h"
#include "base/result.h"
#include "kvm/system.h"
#include "kvm/vcpu_exit.h"

namespace evmm {

class VcpuFd {
 public:
  // xsave_size: KVM_CHECK_EXTENSION(KVM_CAP_XSAVE2), the size of the guest's XSAVE area, which
  // can exceed struct kvm_xsave's 4096 bytes (AMX); 0 when the host lacks the capability.
  VcpuFd(UniqueFd fd, kvm_run* run, size_t run_size, size_t xsave_size = 0)
      : fd_(std::move(fd)), run_(run), run_size_(run_size), xsave_size_(xsave_size) {}
  VcpuFd(VcpuFd&& o) noexcept;
  VcpuFd& operator=(VcpuFd&&) = delete;
  ~VcpuFd();

  // KVM_RUN, decoded. An interrupted run (EINTR) is VcpuExit::Interrupted, not an error.
  // The spans inside the exit point into kvm_run and are valid until the next run().
  Result<VcpuExit> run();

  Result<kvm_regs> get_regs() const;
  Result<void> set_regs(const kvm_regs& r) const;
  Result<kvm_sregs> get_sregs() const;
  Result<void> set_sregs(const kvm_sregs& s) const;
  Result<kvm_fpu> get_fpu() const;
  Result<void> set_fpu(const kvm_fpu& f) const;
  // The guest's FPU/SSE/AVX... state in the standard (non-compacted) XSAVE format: KVM_GET_XSAVE2
  // with the KVM_CAP_XSAVE2 size, else KVM_GET_XSAVE's 4096 bytes. set_xsave takes the same size.
  Result<std::vector<uint8_t>> get_xsave() const;
  Result<void> set_xsave(std::span<const uint8_t> area) const;
  // Extended control registers (XCR0 is index 0), KVM_GET_XCRS / KVM_SET_XCRS.
  Result<kvm_xcrs> get_xcrs() const;
  Result<void> set_xcrs(const kvm_xcrs& x) const;
  Result<void> set_cpuid2(const CpuidTable& table) const;
  // Reads the MSRs in indices; fails with EINVAL naming the first one KVM refused.
  Result<std::vector<uint64_t>> get_msrs(std::span<const uint32_t> indices) const;
  Result<void> set_msrs(std::span<const kvm_msr_entry> entries) const;
  Result<kvm_lapic_state> get_lapic() const;
  Result<void> set_lapic(const kvm_lapic_state& s) const;
  Result<kvm_mp_state> get_mp_state() const;
  Result<void> set_mp_state(const kvm_mp_state& s) const;
  Result<kvm_vcpu_events> get_vcpu_events() const;
  Result<void> set_vcpu_events(const kvm_vcpu_events& e) const;
  Result<kvm_translation> translate(uint64_t gva) const;
  // KVM_SET_GUEST_DEBUG: which #DB/#BP exit to the VMM (KVM_EXIT_DEBUG) and the debug registers.
  Result<void> set_guest_debug(const kvm_guest_debug& d) const;
  // The guest's TSC frequency in kHz (KVM_GET_TSC_KHZ).
  Result<uint32_t> get_tsc_khz() const;

  // The shared run structure: immediate_exit and exit data live here.
  kvm_run* run_struct() const { return run_; }
  int fd() const { return fd_.get(); }

 private:
  UniqueFd fd_;
  kvm_run* run_;
  size_t run_size_;
  size_t xsave_size_;
};

}  // namespace evmm
