#include "kvm/vm_fd.h"

#include <sys/ioctl.h>
#include <sys/mman.h>

#include <cstring>
#include <vector>

#include "kvm/vcpu_fd.h"

namespace evmm {

namespace {
template <typename T>
Result<void> vm_ioctl(int fd, unsigned long req, T arg, const char* name) {
  if (::ioctl(fd, req, arg) < 0) return errno_error("{}", name);
  return {};
}
}  // namespace

int VmFd::check_extension(int cap) const {
  int r = ::ioctl(fd_.get(), KVM_CHECK_EXTENSION, cap);
  return r < 0 ? 0 : r;
}

Result<void> VmFd::set_user_memory_region(const kvm_userspace_memory_region& r) const {
  if (::ioctl(fd_.get(), KVM_SET_USER_MEMORY_REGION, &r) < 0)
    return errno_error("KVM_SET_USER_MEMORY_REGION slot {} at {:#x}+{:#x}", r.slot, r.guest_phys_addr, r.memory_size);
  return {};
}

Result<void> VmFd::get_dirty_log(uint32_t slot, std::span<uint64_t> bitmap) const {
  kvm_dirty_log log{};
  log.slot = slot;
  log.dirty_bitmap = bitmap.data();
  if (::ioctl(fd_.get(), KVM_GET_DIRTY_LOG, &log) < 0) return errno_error("KVM_GET_DIRTY_LOG slot {}", slot);
  return {};
}

Result<void> VmFd::set_tss_addr(uint64_t addr) const {
  return vm_ioctl(fd_.get(), KVM_SET_TSS_ADDR, static_cast<unsigned long>(addr), "KVM_SET_TSS_ADDR");
}

Result<void> VmFd::set_identity_map_addr(uint64_t addr) const {
  return vm_ioctl(fd_.get(), KVM_SET_IDENTITY_MAP_ADDR, &addr, "KVM_SET_IDENTITY_MAP_ADDR");
}

Result<void> VmFd::create_irqchip() const { return vm_ioctl(fd_.get(), KVM_CREATE_IRQCHIP, 0, "KVM_CREATE_IRQCHIP"); }

Result<void> VmFd::create_pit2(uint32_t flags) const {
  kvm_pit_config cfg{};
  cfg.flags = flags;
  return vm_ioctl(fd_.get(), KVM_CREATE_PIT2, &cfg, "KVM_CREATE_PIT2");
}

Result<void> VmFd::irq_line(uint32_t irq, bool level) const {
  kvm_irq_level l{};
  l.irq = irq;
  l.level = level ? 1 : 0;
  return vm_ioctl(fd_.get(), KVM_IRQ_LINE, &l, "KVM_IRQ_LINE");
}

Result<int> VmFd::reset_dirty_rings() const {
  int n = ::ioctl(fd_.get(), KVM_RESET_DIRTY_RINGS, 0);
  if (n < 0) return errno_error("KVM_RESET_DIRTY_RINGS");
  return n;
}

Result<void> VmFd::enable_cap(uint32_t cap, uint64_t arg0, uint64_t arg1) const {
  kvm_enable_cap c{};
  c.cap = cap;
  c.args[0] = arg0;
  c.args[1] = arg1;
  if (::ioctl(fd_.get(), KVM_ENABLE_CAP, &c) < 0) return errno_error("KVM_ENABLE_CAP {}", cap);
  return {};
}

Result<void> VmFd::ioeventfd(const kvm_ioeventfd& req) const {
  if (::ioctl(fd_.get(), KVM_IOEVENTFD, &req) < 0)
    return errno_error("KVM_IOEVENTFD at {:#x} len {} flags {:#x}", req.addr, req.len, req.flags);
  return {};
}

Result<void> VmFd::irqfd(const kvm_irqfd& req) const {
  if (::ioctl(fd_.get(), KVM_IRQFD, &req) < 0) return errno_error("KVM_IRQFD gsi {} flags {:#x}", req.gsi, req.flags);
  return {};
}

Result<void> VmFd::set_gsi_routing(std::span<const kvm_irq_routing_entry> entries) const {
  std::vector<uint8_t> buf(sizeof(kvm_irq_routing) + entries.size_bytes());
  auto* r = reinterpret_cast<kvm_irq_routing*>(buf.data());
  r->nr = static_cast<uint32_t>(entries.size());
  std::memcpy(r->entries, entries.data(), entries.size_bytes());
  if (::ioctl(fd_.get(), KVM_SET_GSI_ROUTING, r) < 0)
    return errno_error("KVM_SET_GSI_ROUTING with {} entries", entries.size());
  return {};
}

Result<int> VmFd::signal_msi(const kvm_msi& msi) const {
  int r = ::ioctl(fd_.get(), KVM_SIGNAL_MSI, &msi);
  if (r < 0) return errno_error("KVM_SIGNAL_MSI to {:#x}", msi.address_lo);
  return r;
}

Result<void> VmFd::set_msr_filter(const kvm_msr_filter& filter) const {
  if (::ioctl(fd_.get(), KVM_X86_SET_MSR_FILTER, &filter) < 0) return errno_error("KVM_X86_SET_MSR_FILTER");
  return {};
}

Result<void> VmFd::xen_hvm_config(const kvm_xen_hvm_config& config) const {
  if (::ioctl(fd_.get(), KVM_XEN_HVM_CONFIG, &config) < 0) return errno_error("KVM_XEN_HVM_CONFIG");
  return {};
}

Result<void> VmFd::xen_hvm_set_attr(const kvm_xen_hvm_attr& attr) const {
  if (::ioctl(fd_.get(), KVM_XEN_HVM_SET_ATTR, &attr) < 0) return errno_error("KVM_XEN_HVM_SET_ATTR type {}", attr.type);
  return {};
}

Result<void> VmFd::xen_hvm_evtchn_send(const kvm_irq_routing_xen_evtchn& evtchn) const {
  if (::ioctl(fd_.get(), KVM_XEN_HVM_EVTCHN_SEND, &evtchn) < 0)
    return errno_error("KVM_XEN_HVM_EVTCHN_SEND port {}", evtchn.port);
  return {};
}

Result<kvm_irqchip> VmFd::get_irqchip(uint32_t chip_id) const {
  kvm_irqchip chip{};
  chip.chip_id = chip_id;
  if (::ioctl(fd_.get(), KVM_GET_IRQCHIP, &chip) < 0) return errno_error("KVM_GET_IRQCHIP {}", chip_id);
  return chip;
}

Result<kvm_clock_data> VmFd::get_clock() const {
  kvm_clock_data d{};
  TRY(vm_ioctl(fd_.get(), KVM_GET_CLOCK, &d, "KVM_GET_CLOCK"));
  return d;
}

Result<void> VmFd::set_clock(const kvm_clock_data& d) const {
  return vm_ioctl(fd_.get(), KVM_SET_CLOCK, &d, "KVM_SET_CLOCK");
}

Result<VcpuFd> VmFd::create_vcpu(unsigned id) const {
  int fd = ::ioctl(fd_.get(), KVM_CREATE_VCPU, id);
  if (fd < 0) return errno_error("KVM_CREATE_VCPU {}", id);
  UniqueFd vcpu(fd);
  void* run = ::mmap(nullptr, run_size_, PROT_READ | PROT_WRITE, MAP_SHARED, fd, 0);
  if (run == MAP_FAILED) return errno_error("mmap kvm_run of vCPU {}", id);
  int xsave_size = check_extension(KVM_CAP_XSAVE2);
  return VcpuFd(std::move(vcpu), static_cast<kvm_run*>(run), run_size_, xsave_size > 0 ? size_t(xsave_size) : 0);
}

}  // namespace evmm
