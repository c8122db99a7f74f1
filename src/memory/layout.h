// The guest-physical map evmm gives a PC guest. One place, so that memory, e820, ACPI and the
// loaders agree.
#pragma once

#include <cstdint>

namespace evmm::layout {

constexpr uint64_t KiB = 1024, MiB = 1024 * KiB, GiB = 1024 * MiB;

// Conventional memory ends at 640 KiB; its last KiB is the EBDA, reported reserved.
constexpr uint64_t kLowRamEnd = 0xA0000;
constexpr uint64_t kEbdaStart = 0x9FC00;
// 0xA0000..0xE0000 is the VGA and option-ROM hole: unbacked, accesses reach the bus.
constexpr uint64_t kBiosStart = 0xE0000;  // firmware area: RSDP, ACPI and MP tables live here
constexpr uint64_t kBiosEnd = 0x100000;
constexpr uint64_t kHighRamStart = 0x100000;
// RAM above this goes above 4 GiB, leaving a 1 GiB hole below 4 GiB for 32-bit MMIO.
constexpr uint64_t kMmioHoleStart = 3 * GiB;
constexpr uint64_t kMmioHoleEnd = 4 * GiB;
// The IOAPIC and LAPIC live in the MMIO hole at their architectural addresses.
constexpr uint64_t kIoapicBase = 0xFEC00000;
constexpr uint64_t kLapicBase = 0xFEE00000;

// Preferred places for boot data in low RAM; boot/placement.h moves a piece that an image segment covers.
constexpr uint64_t kZeroPage = 0x7000;        // Linux boot_params / multiboot info / PVH start info
constexpr uint64_t kCmdline = 0x20000;        // kernel command line
constexpr uint64_t kCmdlineMax = 0x10000;
constexpr uint64_t kBootScratch = 0x30000;    // memory maps, module lists, strings: up to kLowRamEnd
// The GDT the BSP's entry segments come from (multiboot and PVH say the guest must load its own).
constexpr uint64_t kBootGdt = 0x6000;
// Identity page tables for entering 64-bit mode directly (Linux 64-bit boot protocol).
constexpr uint64_t kPml4 = 0x9000;

// KVM needs three pages for the VMX TSS and one for the identity map, below 4 GiB and outside RAM.
constexpr uint64_t kKvmTss = 0xFFFBD000;
constexpr uint64_t kKvmIdentityMap = 0xFFFBC000;

}  // namespace evmm::layout

// The I/O port and IRQ map of evmm's PC platform. Shared by devices, ACPI tables and guests.
namespace evmm::platform {

constexpr uint16_t kCom1Port = 0x3f8;
constexpr uint8_t kCom1Irq = 4;
constexpr uint16_t kDebugConPort = 0xe9;    // Bochs/QEMU debug console: a byte written is printed
constexpr uint16_t kDebugExitPort = 0xf4;   // isa-debug-exit: writing V exits with (V << 1) | 1
constexpr uint16_t kI8042DataPort = 0x60;
constexpr uint16_t kI8042CmdPort = 0x64;
constexpr uint16_t kRtcPort = 0x70;         // index at 0x70, data at 0x71
constexpr uint8_t kRtcIrq = 8;
constexpr uint8_t kCmosCentury = 0x32;      // the PC/AT's CMOS century byte, named by the FADT's CENTURY
constexpr uint16_t kFwCfgPort = 0x510;      // selector (16-bit) at 0x510, data (8-bit) at 0x511
constexpr uint16_t kFwCfgDmaPort = 0x514;
// ACPI fixed hardware, where QEMU's PIIX4 PM puts it.
constexpr uint16_t kPm1aEvtPort = 0x600;    // PM1a_STS (2 bytes) then PM1a_EN (2 bytes)
constexpr uint16_t kPm1aCntPort = 0x604;    // PM1a_CNT, 2 bytes
constexpr uint16_t kPmTmrPort = 0x608;      // PM_TMR, 4 bytes, 3.579545 MHz
constexpr uint8_t kSciIrq = 9;
// evmm's doorbell device (devices/doorbell.h): the event plane end to end.
constexpr uint16_t kDoorbellPort = 0x6f0;              // 4 bytes
constexpr uint64_t kDoorbellMmio = 0xd0000000;         // 4 bytes, in the 32-bit MMIO hole
constexpr uint8_t kDoorbellGsi = 10;
// virtio-mmio windows (devices/virtio/), one page apart after the doorbell, in the order the devices
// are given; each has its own GSI from the ISA IRQs no other device uses, edge-triggered, active
// high, as the MP table and MADT leave them.
constexpr uint64_t kVirtioMmioBase = 0xd0001000;
constexpr uint64_t kVirtioMmioStride = 0x1000;
constexpr uint8_t kVirtioGsis[] = {5, 6, 7, 11, 12, 13, 14, 15};
// evmm's paravirtual control port: a 1-byte write of kPvSuspend suspends the writing vCPU (evmm's
// Suspended MP state) until a wakeup event; the guest continues after the write when resumed.
constexpr uint16_t kPvControlPort = 0x6f4;
constexpr uint8_t kPvSuspend = 1;
// SLP_TYP values declared by the DSDT's \_Sx packages (as QEMU's): S3 = 1, S5 = 0.
constexpr uint8_t kSlpTypS3 = 1;
constexpr uint8_t kSlpTypS5 = 0;

}  // namespace evmm::platform
