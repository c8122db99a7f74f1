// Multiboot v1 (Multiboot Specification 0.6.96): the image header, and the information structure
// handed to the OS. https://www.gnu.org/software/grub/manual/multiboot/multiboot.html
#pragma once

#include <cstddef>
#include <cstdint>
#include <optional>
#include <span>

#include "base/result.h"
#include "boot/boot.h"
#include "boot/elf.h"

namespace evmm::boot {

constexpr uint32_t kMultibootHeaderMagic = 0x1BADB002;
constexpr uint32_t kMultibootBootloaderMagic = 0x2BADB002;  // in EAX at entry (§3.2)
constexpr uint64_t kMultibootSearchLimit = 8192;            // the header lies in the first 8 KiB (§3.1.1)

// Header flags (§3.1.2). Bits 0-15 are requirements a loader must understand or refuse.
enum class MultibootFlag : uint32_t {
  PageAlign = 1u << 0,    // modules page-aligned
  MemoryInfo = 1u << 1,   // mem_* and mmap_* in the info structure
  VideoMode = 1u << 2,    // video mode fields present
  AoutKludge = 1u << 16,  // address fields present: load the file by them, not by its ELF headers
};
constexpr uint32_t kMultibootRequiredMask = 0xffff;

// Information structure flags (§3.3).
enum class MultibootInfoFlag : uint32_t {
  Memory = 1u << 0,
  Cmdline = 1u << 2,
  Modules = 1u << 3,
  Mmap = 1u << 6,
  BootLoaderName = 1u << 9,
};

constexpr uint32_t operator|(MultibootFlag a, MultibootFlag b) { return uint32_t(a) | uint32_t(b); }
constexpr uint32_t operator|(uint32_t a, MultibootFlag b) { return a | uint32_t(b); }
constexpr bool has_flag(uint32_t flags, MultibootFlag f) { return flags & uint32_t(f); }
constexpr uint32_t operator|(MultibootInfoFlag a, MultibootInfoFlag b) { return uint32_t(a) | uint32_t(b); }
constexpr uint32_t operator|(uint32_t a, MultibootInfoFlag b) { return a | uint32_t(b); }

#pragma pack(push, 1)
// §3.1.1: magic, flags and checksum; the address fields (flag 16) and video fields (flag 2) follow.
struct MultibootHeader {
  uint32_t magic, flags, checksum;
  uint32_t header_addr, load_addr, load_end_addr, bss_end_addr, entry_addr;
  uint32_t mode_type, width, height, depth;
};
static_assert(sizeof(MultibootHeader) == 48);

// §3.3 Boot information format.
struct MultibootInfo {
  uint32_t flags;
  uint32_t mem_lower, mem_upper;
  uint32_t boot_device;
  uint32_t cmdline;
  uint32_t mods_count, mods_addr;
  uint32_t syms[4];
  uint32_t mmap_length, mmap_addr;
  uint32_t drives_length, drives_addr;
  uint32_t config_table;
  uint32_t boot_loader_name;
  uint32_t apm_table;
  uint32_t vbe_control_info, vbe_mode_info;
  uint16_t vbe_mode, vbe_interface_seg, vbe_interface_off, vbe_interface_len;
  uint64_t framebuffer_addr;
  uint32_t framebuffer_pitch, framebuffer_width, framebuffer_height;
  uint8_t framebuffer_bpp, framebuffer_type;
  uint8_t color_info[6];
};
static_assert(sizeof(MultibootInfo) == 116);
static_assert(offsetof(MultibootInfo, mmap_length) == 44 && offsetof(MultibootInfo, boot_loader_name) == 64);

struct MultibootModule {
  uint32_t mod_start, mod_end;  // [mod_start, mod_end)
  uint32_t string;
  uint32_t reserved;
};
static_assert(sizeof(MultibootModule) == 16);

// An mmap entry; size counts the bytes after itself, so mmap_addr points at size (§3.3).
struct MultibootMmapEntry {
  uint32_t size;
  uint64_t addr, len;
  uint32_t type;
};
static_assert(sizeof(MultibootMmapEntry) == 24);
#pragma pack(pop)

struct MultibootHeaderAt {
  uint64_t offset;       // file offset of the magic
  MultibootHeader hdr;   // fields beyond the end of the file read as 0
};

// Searches the first 8 KiB, 4-byte aligned, for magic + flags + checksum == 0 (§3.1.1). None found:
// nullopt, unless a magic with a bad checksum, or a valid header past 8 KiB, shows a broken
// multiboot image: EINVAL then.
Result<std::optional<MultibootHeaderAt>> find_multiboot_header(std::span<const uint8_t> image);

// Loads by the a.out kludge fields or by the ELF program headers, writes the module, command line
// and information structure, and returns the §3.2 machine state.
Result<BootEntry> load_multiboot(const GuestMemory& mem, const BootConfig& cfg, const MultibootHeaderAt& header,
                                 const Result<ElfImage>& elf);

}  // namespace evmm::boot
