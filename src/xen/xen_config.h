// What a Xen HVM guest is told about its hypervisor: the choices behind `evmm run --xen`.
#pragma once

#include <cstdint>
#include <string>

namespace evmm {

struct XenCpuidConfig {
  // 0: Xen's leaves replace KVM's at 0x40000000. 0x100: KVM's stay first and Xen's move to
  // 0x40000100, where a guest that scans in steps of 0x100 (as Linux does) still finds them.
  uint32_t offset = 0;
  uint16_t major = 4, minor = 17;
  uint32_t hypercall_msr = 0x40000000;
  uint32_t hypercall_pages = 1;
  uint16_t domid = 1;
};

struct XenConfig {
  XenCpuidConfig cpuid;             // leaves offset, version, MSR, domid
  std::string extraversion = ".0";  // XENVER_extraversion, appended to major.minor
  uint16_t backend_domid = 0;       // the domain the VMM's backends appear as
  // Use the host kernel's Xen support (KVM_CAP_XEN_HVM) when it has enough of it; false: always
  // the userspace path.
  bool kernel_accel = true;
};

}  // namespace evmm
