// boot_params, the Linux "zero page" (Documentation/x86/boot.rst and zero-page.rst), built from the
// ABI struct of <asm/bootparam.h>: zeroed, the image's setup header copied in, then the fields the
// protocol says a loader writes.
#pragma once

#include <asm/bootparam.h>

#include <cstdint>
#include <span>
#include <string_view>
#include <vector>

#include "base/result.h"
#include "boot/boot.h"
#include "boot/linux_header.h"

namespace evmm::boot {

// boot.rst, "type_of_loader": a loader without an assigned id writes 0xFF.
constexpr uint8_t kLoaderTypeUndefined = 0xff;
// The protocol version evmm claims for a vmlinux, which has no setup header of its own: Linux 6.1's
// (2.15), so that the kernel reads acpi_rsdp_addr (2.14+).
constexpr uint16_t kVmlinuxProtocol = 0x020f;
// What arch/x86/boot/header.S gives a 64-bit kernel, used for a vmlinux that cannot say.
constexpr uint32_t kVmlinuxInitrdAddrMax = 0x7fffffff;
constexpr uint32_t kVmlinuxAlignment = 0x1000000;
// heap_end_ptr as a loader with the real-mode code at 0x10000 and the command line at 0x20000 sets
// it (boot.rst, "Sample Boot Configuration"); the 64-bit entry skips the real-mode setup that uses it.
constexpr uint16_t kHeapEndPtr = 0xfe00;
// boot.rst, "Special Command Line Options": vga=normal.
constexpr uint16_t kVidModeNormal = 0xffff;

// A zeroed boot_params with the image's setup header copied to 0x1f1 (boot.rst, "64-bit Boot
// Protocol": "the setup header at offset 0x01f1 of kernel image on should be loaded into struct
// boot_params"). Nothing past the header comes from the image, so sentinel stays 0.
boot_params params_from_bzimage(const BzImage& bz);

// For an ELF vmlinux: the header fields the kernel reads that the image would have given
// (boot_flag, "HdrS", version, kernel_alignment, initrd_addr_max, cmdline_size, LOADED_HIGH).
boot_params params_for_vmlinux();

// What the loader decided, for fill_loader_fields.
struct LinuxLoaderFields {
  uint64_t cmdline_addr = 0;
  std::string_view cmdline;
  uint64_t initrd_addr = 0, initrd_size = 0;  // 0, 0: no initrd
  std::vector<E820Entry> e820;
  uint64_t rsdp = kRsdpAddress;
};

// Writes type_of_loader, loadflags (LOADED_HIGH, CAN_USE_HEAP; KASLR_FLAG and QUIET_FLAG clear),
// heap_end_ptr, vid_mode (from vga=), cmd_line_ptr/ext_cmd_line_ptr, ramdisk_image/size and their
// ext_ halves, e820_table/e820_entries, acpi_rsdp_addr (protocol 2.14+), hardware_subarch (PC).
// E2BIG when the command line is longer than the header's cmdline_size or the e820 map has more
// entries than boot_params holds.
Result<void> fill_loader_fields(boot_params& bp, const LinuxLoaderFields& f);

// vid_mode for a command line: the last vga= (a number in C notation, or normal/ext/ask), or
// normal when there is none or it cannot be read.
uint16_t vid_mode_from_cmdline(std::string_view cmdline);

}  // namespace evmm::boot
