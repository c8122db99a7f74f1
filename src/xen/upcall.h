// Upcall delivery (QEMU: kvm_xen_inject_vcpu_callback_vector in hw/i386/kvm/xen_evtchn.c): which
// vector a vCPU's pending events raise, and raising it. The per-vCPU vector
// (HVMOP_set_evtchn_upcall_vector) wins over the domain's callback (HVM_PARAM_CALLBACK_IRQ of type
// vector); either goes out as an MSI to the vCPU's APIC ID through the in-kernel LAPIC.
#pragma once

#include <atomic>
#include <cstdint>
#include <functional>
#include <vector>

#include "event/interrupt_announcer.h"
#include "kvm/vm_fd.h"
#include "xen/evtchn_2l.h"

namespace evmm {

class XenUpcalls {
 public:
  struct Sink {
    const VmFd* vm = nullptr;         // KVM_SIGNAL_MSI; null in unit tests
    InterruptAnnouncer* notifier = nullptr;  // told after each upcall
    std::function<void(uint32_t vcpu, uint8_t vector)> inject_override{};  // replaces the MSI (tests)
  };
  XenUpcalls(uint32_t vcpus, Sink sink);

  void set_vcpu_vector(uint32_t vcpu, uint8_t vector) { vcpus_.at(vcpu).store(vector, std::memory_order_release); }
  void set_callback_param(uint64_t value) { callback_param_.store(value, std::memory_order_release); }
  uint64_t callback_param() const { return callback_param_.load(); }

  // Raises vcpu's upcall, or counts it lost while the guest has set no vector: its pending bits stay
  // for the guest to find when it sets one.
  void inject(uint32_t vcpu);
  // Xen asserts a new callback for a vCPU whose upcall is already flagged (hvm_assert_evtchn_irq),
  // so that events that arrived before the guest chose a vector are not stranded behind the flag.
  void reassert(uint32_t vcpu, const EvtchnPages& pages, const Evtchn2lLayout& layout);

  uint64_t injected() const { return injected_.load(); }
  uint64_t lost() const { return lost_.load(); }

 private:
  Sink sink_;
  std::vector<std::atomic<uint8_t>> vcpus_;  // per-vCPU vector; 0: the domain's callback
  std::atomic<uint64_t> callback_param_{0};  // HVM_PARAM_CALLBACK_IRQ as the guest set it
  std::atomic<uint64_t> injected_{0}, lost_{0};
};

}  // namespace evmm
