// Assembly of a Vm from a VmConfig, in the order KVM needs: memory slots, then the irqchip and GSI
// routing, the platform devices and sleep policy, the guest image and its tables, the vCPUs, and
// the Xen emulation last (it reads the BSP's TSC).
#pragma once

#include <memory>

#include "boot/boot.h"
#include "kvm/system.h"
#include "vmm/config.h"
#include "vmm/vm.h"

namespace evmm {

class VmBuilder {
 public:
  // A VM that cannot be built fails with the outcome the process should report.
  static tl::expected<std::unique_ptr<Vm>, VmOutcome> build(const System& kvm, const VmConfig& cfg);

 private:
  explicit VmBuilder(Vm& vm) : vm_(vm) {}
  Result<void> setup_platform();
  Result<void> load_guest();
  Result<void> create_vcpus(const System& kvm);
  Result<void> setup_xen(const VcpuFd& bsp);

  Vm& vm_;
  BootEntry entry_{};  // load_guest's result, for the BSP in create_vcpus
};

}  // namespace evmm
