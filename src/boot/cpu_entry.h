// The CPU state an image is entered in: the boot GDT and identity page tables in guest memory, and
// the BSP's registers for vcpu/'s apply_entry_state.
#pragma once

#include "base/result.h"
#include "boot/boot.h"
#include "kvm/vcpu_fd.h"
#include "memory/guest_memory.h"
#include "vcpu/cpu_setup.h"

namespace evmm {

// Writes the boot GDT at entry.gdt and, for a 64-bit entry, identity page tables at
// entry.page_tables into guest memory.
Result<void> write_boot_tables(const GuestMemory& mem, const BootEntry& entry);
// Registers and segments of the BSP at the image's entry, using the tables write_boot_tables wrote.
EntryState boot_entry_state(const BootEntry& entry);
// boot_entry_state applied to `vcpu`.
Result<void> set_entry_state(const VcpuFd& vcpu, const BootEntry& entry);

}  // namespace evmm
