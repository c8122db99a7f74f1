// Finding ACPI tables in guest memory after boot, as firmware would on resume: the guest may have
// rewritten anything, so every pointer and length is checked.
#pragma once

#include <cstdint>

#include "base/result.h"
#include "memory/guest_memory.h"

namespace evmm::boot {

// The FACS's guest-physical address: RSDP (at kRsdpAddress) -> RSDT -> FADT ("FACP") -> FIRMWARE_CTRL.
// ENOENT when a signature does not match, EFAULT when a pointer leaves guest RAM.
Result<uint64_t> find_facs(const GuestMemory& mem);

// FACS fields the resume path reads (ACPI 6.0, 5.2.10).
constexpr uint64_t kFacsWakingVectorOffset = 12;    // firmware_waking_vector, 32 bits, real mode
constexpr uint64_t kFacsXWakingVectorOffset = 24;   // x_firmware_waking_vector, 64 bits

}  // namespace evmm::boot
