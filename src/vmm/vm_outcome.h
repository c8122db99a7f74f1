// How a VM ended, as the process reports it.
#pragma once

#include <string>

namespace evmm {

struct VmOutcome {
  enum class Kind {
    PowerOff, DebugExit, Reset, Crash, TripleFault, GuestError, VmmError, Interrupted,
    Suspended,   // the guest asked for ACPI S3 and the policy is to end the VM
    HostError,   // the VM could not be created: /dev/kvm, a capability, a KVM ioctl
    ImageError,  // the image or initrd could not be read or loaded
  } kind;
  int exit_status;
  std::string message;  // one line for the user; empty for a clean power-off
};

}  // namespace evmm
