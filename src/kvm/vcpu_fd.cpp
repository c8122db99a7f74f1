#include "kvm/vcpu_fd.h"

#include <sys/ioctl.h>
#include <sys/mman.h>

#include <algorithm>
#include <cstring>


namespace evmm {

namespace {
template <typename T>
Result<T> get(int fd, unsigned long req, const char* name) {
  T v{};
  if (::ioctl(fd, req, &v) < 0) return errno_error("{}", name);
  return v;
}
template <typename T>
Result<void> set(int fd, unsigned long req, const T& v, const char* name) {
  if (::ioctl(fd, req, &v) < 0) return errno_error("{}", name);
  return {};
}
}  // namespace

VcpuFd::VcpuFd(VcpuFd&& o) noexcept
    : fd_(std::move(o.fd_)), run_(std::exchange(o.run_, nullptr)), run_size_(o.run_size_), xsave_size_(o.xsave_size_) {}

VcpuFd::~VcpuFd() {
  if (run_) ::munmap(run_, run_size_);
}

Result<VcpuExit> VcpuFd::run() {
  if (::ioctl(fd_.get(), KVM_RUN, 0) < 0) {
    // EINTR: a signal arrived, or immediate_exit was set before entry (the kick protocol).
    if (errno == EINTR || errno == EAGAIN) return exit::Interrupted{};
    return errno_error("KVM_RUN");
  }
  auto* base = reinterpret_cast<uint8_t*>(run_);
  switch (run_->exit_reason) {
    case KVM_EXIT_IO: {
      auto& io = run_->io;
      size_t len = size_t{io.size} * io.count;
      // The data offset comes from the kernel, but check it lies inside the mapping anyway.
      if (io.data_offset > run_size_ || len > run_size_ - io.data_offset)
        return make_error(EIO, "KVM_EXIT_IO data outside kvm_run ({}+{})", io.data_offset, len);
      std::span<uint8_t> data(base + io.data_offset, len);
      if (io.direction == KVM_EXIT_IO_OUT) return exit::IoOut{io.port, io.size, data};
      return exit::IoIn{io.port, io.size, data};
    }
    case KVM_EXIT_MMIO: {
      auto& m = run_->mmio;
      size_t len = std::min<size_t>(m.len, sizeof m.data);
      if (m.is_write) return exit::MmioWrite{m.phys_addr, std::span<const uint8_t>(m.data, len)};
      return exit::MmioRead{m.phys_addr, std::span<uint8_t>(m.data, len)};
    }
    case KVM_EXIT_HLT:
      return exit::Hlt{};
    case KVM_EXIT_SHUTDOWN:
      return exit::Shutdown{};
    case KVM_EXIT_INTR:
      return exit::Interrupted{};
    case KVM_EXIT_SYSTEM_EVENT: {
      auto& se = run_->system_event;
      return exit::SystemEvent{se.type, std::span<const __u64>(se.data, std::min<size_t>(se.ndata, 16))};
    }
    case KVM_EXIT_FAIL_ENTRY:
      return exit::FailEntry{run_->fail_entry.hardware_entry_failure_reason, run_->fail_entry.cpu};
    case KVM_EXIT_INTERNAL_ERROR: {
      auto& ie = run_->internal;
      auto& ef = run_->emulation_failure;
      if (ie.suberror == KVM_INTERNAL_ERROR_EMULATION && ef.ndata >= 3 &&
          (ef.flags & KVM_INTERNAL_ERROR_EMULATION_FLAG_INSTRUCTION_BYTES))
        return exit::EmulationFailure{
            std::span<const uint8_t>(ef.insn_bytes, std::min<size_t>(ef.insn_size, sizeof ef.insn_bytes))};
      return exit::InternalError{ie.suberror, std::span<const __u64>(ie.data, std::min<size_t>(ie.ndata, 16))};
    }
    case KVM_EXIT_X86_RDMSR:
    case KVM_EXIT_X86_WRMSR: {
      auto& m = run_->msr;
      bool write = run_->exit_reason == KVM_EXIT_X86_WRMSR;
      return exit::Msr{write, m.index, write ? m.data : 0, &m.data, &m.error};
    }
    case KVM_EXIT_DEBUG: {
      auto& d = run_->debug.arch;
      return exit::Debug{d.exception, d.pc, d.dr6, d.dr7};
    }
    case KVM_EXIT_XEN: {
      auto& x = run_->xen;
      if (x.type != KVM_EXIT_XEN_HCALL) return exit::Unknown{run_->exit_reason};
      std::array<uint64_t, 6> args;
      std::copy(std::begin(x.u.hcall.params), std::end(x.u.hcall.params), args.begin());
      return exit::XenHypercall{x.u.hcall.longmode != 0, x.u.hcall.cpl, x.u.hcall.input, args, &x.u.hcall.result};
    }
    case KVM_EXIT_DIRTY_RING_FULL:
      return exit::DirtyRingFull{};
    default:
      return exit::Unknown{run_->exit_reason};
  }
}

Result<kvm_regs> VcpuFd::get_regs() const { return get<kvm_regs>(fd_.get(), KVM_GET_REGS, "KVM_GET_REGS"); }
Result<void> VcpuFd::set_regs(const kvm_regs& r) const { return set(fd_.get(), KVM_SET_REGS, r, "KVM_SET_REGS"); }
Result<kvm_sregs> VcpuFd::get_sregs() const { return get<kvm_sregs>(fd_.get(), KVM_GET_SREGS, "KVM_GET_SREGS"); }
Result<void> VcpuFd::set_sregs(const kvm_sregs& s) const { return set(fd_.get(), KVM_SET_SREGS, s, "KVM_SET_SREGS"); }
Result<kvm_fpu> VcpuFd::get_fpu() const { return get<kvm_fpu>(fd_.get(), KVM_GET_FPU, "KVM_GET_FPU"); }
Result<void> VcpuFd::set_fpu(const kvm_fpu& f) const { return set(fd_.get(), KVM_SET_FPU, f, "KVM_SET_FPU"); }

Result<std::vector<uint8_t>> VcpuFd::get_xsave() const {
  // kvm_xsave is a 4096-byte region followed by a flexible array; KVM_GET_XSAVE2 fills as many
  // bytes as KVM_CAP_XSAVE2 reported (KVM API, 4.42 and 4.136).
  size_t size = std::max(xsave_size_, sizeof(kvm_xsave));
  std::vector<uint8_t> area(size);
  unsigned long req = xsave_size_ ? KVM_GET_XSAVE2 : KVM_GET_XSAVE;
  if (::ioctl(fd_.get(), req, area.data()) < 0) return errno_error("{}", xsave_size_ ? "KVM_GET_XSAVE2" : "KVM_GET_XSAVE");
  return area;
}

Result<void> VcpuFd::set_xsave(std::span<const uint8_t> area) const {
  size_t size = std::max(xsave_size_, sizeof(kvm_xsave));
  if (area.size() != size) return make_error(EINVAL, "KVM_SET_XSAVE: {} bytes, the vCPU's area has {}", area.size(), size);
  if (::ioctl(fd_.get(), KVM_SET_XSAVE, area.data()) < 0) return errno_error("KVM_SET_XSAVE");
  return {};
}

Result<kvm_xcrs> VcpuFd::get_xcrs() const { return get<kvm_xcrs>(fd_.get(), KVM_GET_XCRS, "KVM_GET_XCRS"); }
Result<void> VcpuFd::set_xcrs(const kvm_xcrs& x) const { return set(fd_.get(), KVM_SET_XCRS, x, "KVM_SET_XCRS"); }
Result<kvm_lapic_state> VcpuFd::get_lapic() const {
  return get<kvm_lapic_state>(fd_.get(), KVM_GET_LAPIC, "KVM_GET_LAPIC");
}
Result<void> VcpuFd::set_lapic(const kvm_lapic_state& s) const { return set(fd_.get(), KVM_SET_LAPIC, s, "KVM_SET_LAPIC"); }
Result<kvm_mp_state> VcpuFd::get_mp_state() const {
  return get<kvm_mp_state>(fd_.get(), KVM_GET_MP_STATE, "KVM_GET_MP_STATE");
}
Result<void> VcpuFd::set_mp_state(const kvm_mp_state& s) const {
  return set(fd_.get(), KVM_SET_MP_STATE, s, "KVM_SET_MP_STATE");
}
Result<kvm_vcpu_events> VcpuFd::get_vcpu_events() const {
  return get<kvm_vcpu_events>(fd_.get(), KVM_GET_VCPU_EVENTS, "KVM_GET_VCPU_EVENTS");
}
Result<void> VcpuFd::set_vcpu_events(const kvm_vcpu_events& e) const {
  return set(fd_.get(), KVM_SET_VCPU_EVENTS, e, "KVM_SET_VCPU_EVENTS");
}

Result<void> VcpuFd::set_guest_debug(const kvm_guest_debug& d) const {
  if (::ioctl(fd_.get(), KVM_SET_GUEST_DEBUG, &d) < 0) return errno_error("KVM_SET_GUEST_DEBUG");
  return {};
}

Result<kvm_translation> VcpuFd::translate(uint64_t gva) const {
  kvm_translation t{};
  t.linear_address = gva;
  if (::ioctl(fd_.get(), KVM_TRANSLATE, &t) < 0) return errno_error("KVM_TRANSLATE {:#x}", gva);
  return t;
}

Result<uint32_t> VcpuFd::get_tsc_khz() const {
  int khz = ::ioctl(fd_.get(), KVM_GET_TSC_KHZ);
  if (khz < 0) return errno_error("KVM_GET_TSC_KHZ");
  return static_cast<uint32_t>(khz);
}

Result<void> VcpuFd::set_cpuid2(const CpuidTable& table) const {
  const auto& e = table.entries();
  std::vector<uint8_t> buf(sizeof(kvm_cpuid2) + e.size() * sizeof(kvm_cpuid_entry2));
  auto* c = reinterpret_cast<kvm_cpuid2*>(buf.data());
  c->nent = static_cast<uint32_t>(e.size());
  std::memcpy(c->entries, e.data(), e.size() * sizeof(kvm_cpuid_entry2));
  if (::ioctl(fd_.get(), KVM_SET_CPUID2, c) < 0) return errno_error("KVM_SET_CPUID2");
  return {};
}

namespace {
std::vector<uint8_t> msr_buffer(size_t n) { return std::vector<uint8_t>(sizeof(kvm_msrs) + n * sizeof(kvm_msr_entry)); }
}  // namespace

Result<std::vector<uint64_t>> VcpuFd::get_msrs(std::span<const uint32_t> indices) const {
  auto buf = msr_buffer(indices.size());
  auto* m = reinterpret_cast<kvm_msrs*>(buf.data());
  m->nmsrs = static_cast<uint32_t>(indices.size());
  for (size_t i = 0; i < indices.size(); ++i) m->entries[i].index = indices[i];
  int n = ::ioctl(fd_.get(), KVM_GET_MSRS, m);
  if (n < 0) return errno_error("KVM_GET_MSRS");
  // KVM returns how many it read; it stops at the first it refuses.
  if (static_cast<size_t>(n) != indices.size())
    return make_error(EINVAL, "KVM_GET_MSRS: KVM refused MSR {:#x}", indices[n]);
  std::vector<uint64_t> out(indices.size());
  for (size_t i = 0; i < indices.size(); ++i) out[i] = m->entries[i].data;
  return out;
}

Result<void> VcpuFd::set_msrs(std::span<const kvm_msr_entry> entries) const {
  auto buf = msr_buffer(entries.size());
  auto* m = reinterpret_cast<kvm_msrs*>(buf.data());
  m->nmsrs = static_cast<uint32_t>(entries.size());
  std::memcpy(m->entries, entries.data(), entries.size_bytes());
  int n = ::ioctl(fd_.get(), KVM_SET_MSRS, m);
  if (n < 0) return errno_error("KVM_SET_MSRS");
  if (static_cast<size_t>(n) != entries.size())
    return make_error(EINVAL, "KVM_SET_MSRS: KVM refused MSR {:#x}", entries[n].index);
  return {};
}

}  // namespace evmm
