// How a device asks the VMM to stop, reset or power off the VM. The VMM decides what that means.
#pragma once

namespace evmm {

enum class StopReason {
  DebugExit,  // isa-debug-exit write; status is (V << 1) | 1
  PowerOff,   // ACPI S5 or equivalent; status 0
  Reset,      // i8042 pulse-reset or similar; --on-reset picks reset or exit
  Crash,      // the guest reported a crash (status chosen by the device)
  Suspend,    // the guest asked to be suspended and saved (Xen SHUTDOWN_suspend); evmm ends the VM
};

class VmStopHandler {
 public:
  virtual ~VmStopHandler() = default;
  // Thread-safe; may be called from any vCPU thread. The first request wins.
  virtual void request_stop(StopReason reason, int exit_status) = 0;
};

}  // namespace evmm
