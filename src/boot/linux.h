// Linux through its 64-bit boot protocol (Documentation/x86/boot.rst, "64-bit Boot Protocol"): the
// BSP starts in 64-bit mode on identity page tables (EntryMode::Long64, the first 4 GiB), with the
// boot GDT's __BOOT_CS/__BOOT_DS, interrupts off and RSI = &boot_params (linux_params.h).
//
// A bzImage is loaded one of two ways:
//  - Decompress::Host (the default): evmm decompresses the payload (decompress.h), a vmlinux ELF,
//    loads its PT_LOAD segments at their physical addresses and enters startup_64 (the ELF entry).
//    The kernel then runs at its link-time address: no KASLR, as with any vmlinux boot.
//  - Decompress::Guest: the protected-mode kernel is loaded at pref_address (a relocatable kernel:
//    aligned up to kernel_alignment) or, for a non-relocatable one, at 1 MiB, and entered at its
//    64-bit entry (load address + 0x200); its own decompressor unpacks it in the guest.
// An ELF vmlinux is loaded like the host-decompressed payload, with a boot_params that has no
// setup header to copy (params_for_vmlinux).
//
// The initrd (cfg.modules[0], at most one) goes as high as RAM and initrd_addr_max allow, page
// aligned, above the kernel's footprint (its load range and init_size from its runtime start).
// Errors, each one line: EINVAL for XLF_KERNEL_64 clear, a payload that is not an ELF64 vmlinux,
// more than one initrd; EFAULT when the kernel's footprint (init_size) or the initrd does not fit
// in RAM; E2BIG from decompression or a command line over cmdline_size.
#pragma once

#include "base/result.h"
#include "boot/boot.h"
#include "boot/elf.h"
#include "boot/linux_header.h"
#include "memory/guest_memory.h"

namespace evmm::boot {

Result<BootEntry> load_linux_bzimage(const GuestMemory& mem, const BootConfig& cfg, const BzImage& bz);

Result<BootEntry> load_linux_vmlinux(const GuestMemory& mem, const BootConfig& cfg, const ElfImage& elf);

// Where the initrd goes: the highest page-aligned start such that [start, +size) is RAM, ends at
// or below addr_max + 1 (initrd_addr_max is the highest byte it may occupy) and starts at or above
// floor. EFAULT when there is none.
Result<uint64_t> place_initrd(const GuestMemory& mem, uint64_t size, uint64_t addr_max, uint64_t floor);

}  // namespace evmm::boot
