// A KVM VM file descriptor: one method per ioctl, no policy.
#pragma once

#include "kvm/kvm_uapi.h"

#include <cstdint>
#include <span>

#include "base/fd.h"
#include "base/result.h"

namespace evmm {

class VcpuFd;

class VmFd {
 public:
  VmFd(UniqueFd fd, int run_size) : fd_(std::move(fd)), run_size_(run_size) {}

  int check_extension(int cap) const;
  Result<void> set_user_memory_region(const kvm_userspace_memory_region& region) const;
  // KVM_GET_DIRTY_LOG: the pages the guest wrote in a slot made with KVM_MEM_LOG_DIRTY_PAGES since the
  // last call (one bit a page, at least ceil(pages / 64) words), and clears them.
  Result<void> get_dirty_log(uint32_t slot, std::span<uint64_t> bitmap) const;
  // KVM_RESET_DIRTY_RINGS: write-protects again the pages harvested from the vCPUs' dirty rings
  // (kvm/dirty_ring.h); returns how many.
  Result<int> reset_dirty_rings() const;
  Result<void> set_tss_addr(uint64_t addr) const;
  Result<void> set_identity_map_addr(uint64_t addr) const;
  Result<void> create_irqchip() const;
  Result<void> create_pit2(uint32_t flags = 0) const;
  Result<void> irq_line(uint32_t irq, bool level) const;
  Result<void> enable_cap(uint32_t cap, uint64_t arg0 = 0, uint64_t arg1 = 0) const;
  // KVM_IOEVENTFD: assign (or, with KVM_IOEVENTFD_FLAG_DEASSIGN in flags, remove) an ioeventfd.
  Result<void> ioeventfd(const kvm_ioeventfd& req) const;
  // KVM_IRQFD: assign (or deassign, with KVM_IRQFD_FLAG_DEASSIGN) an irqfd.
  Result<void> irqfd(const kvm_irqfd& req) const;
  // KVM_SET_GSI_ROUTING: replaces the whole routing table.
  Result<void> set_gsi_routing(std::span<const kvm_irq_routing_entry> entries) const;
  // KVM_SIGNAL_MSI: returns whether the MSI was delivered (0: blocked by the guest).
  Result<int> signal_msi(const kvm_msi& msi) const;
  // KVM_GET_IRQCHIP for chip_id (KVM_IRQCHIP_PIC_MASTER, _PIC_SLAVE or _IOAPIC).
  Result<kvm_irqchip> get_irqchip(uint32_t chip_id) const;
  Result<kvm_clock_data> get_clock() const;
  Result<void> set_clock(const kvm_clock_data& data) const;
  Result<VcpuFd> create_vcpu(unsigned id) const;
  // KVM_X86_SET_MSR_FILTER: replaces the whole MSR filter (needs KVM_CAP_X86_MSR_FILTER).
  Result<void> set_msr_filter(const kvm_msr_filter& filter) const;
  // Xen support in the kernel (KVM_CAP_XEN_HVM): KVM_XEN_HVM_CONFIG, KVM_XEN_HVM_SET_ATTR and
  // KVM_XEN_HVM_EVTCHN_SEND. Hosts without it answer ENOTTY/EINVAL.
  Result<void> xen_hvm_config(const kvm_xen_hvm_config& config) const;
  Result<void> xen_hvm_set_attr(const kvm_xen_hvm_attr& attr) const;
  Result<void> xen_hvm_evtchn_send(const kvm_irq_routing_xen_evtchn& evtchn) const;

  int fd() const { return fd_.get(); }

 private:
  UniqueFd fd_;
  int run_size_;
};

}  // namespace evmm
