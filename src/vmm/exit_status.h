// The evmm process's exit statuses (DESIGN.md, "Interfaces people see").
//
// A guest's debug-exit write of V gives (V << 1) | 1, always odd; so every status evmm chooses for
// itself is even, and none can be mistaken for a guest's. The OS keeps the low 8 bits of a status.
#pragma once

namespace evmm::exit_status {

constexpr int kPowerOff = 0;      // the guest powered off (ACPI S5)
constexpr int kUsage = 2;         // the command line is wrong
constexpr int kHost = 4;          // no usable /dev/kvm, a capability is missing, VM setup failed
constexpr int kImage = 6;         // the image or initrd cannot be read or loaded
constexpr int kGuestFault = 8;    // triple fault, an instruction evmm cannot complete, KVM internal error
constexpr int kReset = 10;        // the guest reset itself and --on-reset=exit
constexpr int kGuestCrash = 12;   // the guest reported a crash
constexpr int kVmmError = 14;     // evmm failed while the VM ran (a KVM ioctl, serial output)
constexpr int kSuspended = 16;    // the guest asked for ACPI S3 and --on-suspend=exit
constexpr int kInterrupted = 130; // SIGINT or SIGTERM, as a shell reports a signalled command

}  // namespace evmm::exit_status
