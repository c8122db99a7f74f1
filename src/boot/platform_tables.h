// The two halves of write_platform_tables: ACPI in [kRsdpAddress, kMpFloatingPointerAddress) and
// the MP table in [kMpFloatingPointerAddress, kBiosEnd).
#pragma once

#include "base/result.h"
#include "boot/aml.h"
#include "boot/boot.h"
#include "memory/guest_memory.h"

namespace evmm::boot {

constexpr unsigned kMaxCpus = 255;  // xAPIC IDs are 8 bits and the IOAPIC takes the next one

// The DSDT's AML body: the sleep-state packages and the virtio-mmio devices under \_SB.
aml::Bytes dsdt_aml(std::span<const VirtioMmioDesc> virtio = {});

Result<void> write_acpi_tables(const GuestMemory& mem, unsigned cpus, std::span<const VirtioMmioDesc> virtio = {});
Result<void> write_mp_table(const GuestMemory& mem, unsigned cpus);

}  // namespace evmm::boot
