// Loading a guest image: the format is detected, the image and its boot data are written into
// guest memory, and the BSP's entry state is returned.
#pragma once

#include <cstdint>
#include <optional>
#include <span>
#include <string>
#include <vector>

#include "base/result.h"
#include "boot/boot_options.h"
#include "memory/guest_memory.h"
#include "memory/layout.h"

namespace evmm {

enum class ImageFormat { Multiboot, Pvh, ElfPlain, Linux };

// The CPU state the BSP starts in.
enum class EntryMode {
  Protected32,  // 32-bit flat protected mode, paging off (multiboot, PVH, plain ELF)
  Long64,       // 64-bit mode with identity page tables at BootEntry::page_tables (Linux 64-bit protocol)
};

struct BootEntry {
  ImageFormat format;
  EntryMode mode;
  uint64_t rip = 0;
  uint64_t rax = 0, rbx = 0, rsi = 0, rsp = 0;
  // Where write_boot_tables puts the GDT and (Long64) the page tables: boot/placement.h chose them.
  uint64_t gdt = layout::kBootGdt;
  uint64_t page_tables = layout::kPml4;
};

struct Module {
  std::span<const uint8_t> data;
  std::string cmdline;
};

struct BootConfig {
  std::span<const uint8_t> image;
  std::string cmdline;
  std::vector<Module> modules;  // --initrd becomes module 0
  unsigned cpus = 1;            // not used by load_image; write_platform_tables takes the count
  BootProtocol protocol = BootProtocol::Auto;
  Decompress decompress = Decompress::Host;  // for a bzImage (boot/linux.h)
};

const char* to_string(ImageFormat f);

// Errors: EINVAL for a malformed image, or one the chosen protocol cannot boot (with a one-line reason), ENOEXEC for an unknown format,
// EFAULT/E2BIG when the image or its data do not fit in guest RAM. The image is written only after
// every segment's placement has been checked; a failed load may still leave boot data behind.
Result<BootEntry> load_image(const GuestMemory& mem, const BootConfig& cfg);

// e820 as the guest sees it, everywhere it appears (multiboot, PVH, fw_cfg, boot_params).
struct E820Entry {
  uint64_t addr;
  uint64_t size;
  uint32_t type;  // 1 = RAM, 2 = reserved, 3 = ACPI reclaimable
  bool operator==(const E820Entry&) const = default;
};
namespace e820 {
constexpr uint32_t kRam = 1;
constexpr uint32_t kReserved = 2;
constexpr uint32_t kAcpi = 3;
}  // namespace e820
// Sorted, non-overlapping, adjacent entries of one type merged.
std::vector<E820Entry> build_e820(const GuestMemory& mem);

// Where write_platform_tables puts its anchors: the ACPI RSDP (ACPI 6.4 §5.2.5.1: 16-byte aligned
// in 0xE0000..0xFFFFF) and the MP floating pointer (MP 1.4 §4: 16-byte aligned in 0xF0000..0xFFFFF).
// The ACPI tables fill 0xE0000..0xF0000, the MP table 0xF0000..0x100000.
constexpr uint64_t kRsdpAddress = 0xE0000;
constexpr uint64_t kMpFloatingPointerAddress = 0xF0000;

// A virtio-mmio device as the DSDT describes it: Device(VRnn) with _HID "LNRO0005" (the ID Linux's
// virtio_mmio driver matches) and a _CRS of its register window and its interrupt (edge, active high).
// enumerate is its _STA: false (0, absent) when the devices also reach Linux on its command line, so
// that no device is probed twice; our own guests read the _CRS either way.
struct VirtioMmioDesc {
  uint64_t base;
  uint32_t size;
  uint32_t gsi;
  bool enumerate = true;
};

// Writes RSDP, RSDT, XSDT, FADT, FACS, DSDT, MADT and an MP table into the BIOS area, which it
// clears first. EINVAL for cpus == 0 or > 255, or a device above 4 GiB; E2BIG if the tables would
// overflow their area.
Result<void> write_platform_tables(const GuestMemory& mem, unsigned cpus, std::span<const VirtioMmioDesc> virtio = {});

}  // namespace evmm
