#include "boot/linux_params.h"

#include <cstddef>
#include <cstdlib>
#include <cstring>
#include <string>

#include "memory/layout.h"

namespace evmm::boot {

boot_params params_from_bzimage(const BzImage& bz) {
  boot_params bp;
  std::memset(&bp, 0, sizeof bp);
  static_assert(offsetof(boot_params, hdr) == kSetupHeaderOffset);
  // parse_bzimage bounded header_bytes by the room boot_params has for it.
  std::memcpy(reinterpret_cast<uint8_t*>(&bp) + kSetupHeaderOffset, bz.header_bytes.data(), bz.header_bytes.size());
  return bp;
}

boot_params params_for_vmlinux() {
  boot_params bp;
  std::memset(&bp, 0, sizeof bp);
  bp.hdr.boot_flag = kBootFlag;
  bp.hdr.header = kHdrSMagic;
  bp.hdr.version = kVmlinuxProtocol;
  bp.hdr.loadflags = LOADED_HIGH;
  bp.hdr.kernel_alignment = kVmlinuxAlignment;
  bp.hdr.initrd_addr_max = kVmlinuxInitrdAddrMax;
  bp.hdr.cmdline_size = uint32_t(layout::kCmdlineMax - 1);
  return bp;
}

uint16_t vid_mode_from_cmdline(std::string_view cmdline) {
  uint16_t mode = kVidModeNormal;
  size_t at = 0;
  while (at < cmdline.size()) {
    size_t end = cmdline.find(' ', at);
    if (end == std::string_view::npos) end = cmdline.size();
    std::string_view word = cmdline.substr(at, end - at);
    at = end + 1;
    if (!word.starts_with("vga=")) continue;
    std::string value(word.substr(4));
    if (value == "normal") mode = 0xffff;
    else if (value == "ext") mode = 0xfffe;
    else if (value == "ask") mode = 0xfffd;
    else {
      char* rest = nullptr;
      errno = 0;
      unsigned long v = std::strtoul(value.c_str(), &rest, 0);
      if (!value.empty() && *rest == '\0' && errno == 0 && v <= 0xffff) mode = uint16_t(v);
    }
  }
  return mode;
}

Result<void> fill_loader_fields(boot_params& bp, const LinuxLoaderFields& f) {
  setup_header& h = bp.hdr;
  // boot.rst, "cmdline_size": the most characters the kernel takes, without the NUL.
  if (f.cmdline.size() > h.cmdline_size)
    return make_error(E2BIG, "the command line is {} bytes; this kernel takes at most {} (cmdline_size)",
                      f.cmdline.size(), uint32_t(h.cmdline_size));
  if (f.e820.size() > E820_MAX_ENTRIES_ZEROPAGE)
    return make_error(E2BIG, "the e820 map has {} entries; boot_params holds {}", f.e820.size(),
                      E820_MAX_ENTRIES_ZEROPAGE);
  h.type_of_loader = kLoaderTypeUndefined;
  h.ext_loader_type = 0;
  h.ext_loader_ver = 0;
  // KEEP_SEGMENTS is obsolete (boot.rst) and only the 32-bit entry read it; KASLR_FLAG is for the
  // kernel's own decompressor to set; QUIET_FLAG clear: early messages are wanted.
  h.loadflags = uint8_t((h.loadflags & ~(KASLR_FLAG | QUIET_FLAG | KEEP_SEGMENTS)) | LOADED_HIGH | CAN_USE_HEAP);
  h.heap_end_ptr = kHeapEndPtr;
  h.vid_mode = vid_mode_from_cmdline(f.cmdline);
  h.cmd_line_ptr = uint32_t(f.cmdline_addr);
  bp.ext_cmd_line_ptr = uint32_t(f.cmdline_addr >> 32);
  h.ramdisk_image = uint32_t(f.initrd_addr);
  h.ramdisk_size = uint32_t(f.initrd_size);
  bp.ext_ramdisk_image = uint32_t(f.initrd_addr >> 32);
  bp.ext_ramdisk_size = uint32_t(f.initrd_size >> 32);
  h.hardware_subarch = 0;  // X86_SUBARCH_PC
  h.hardware_subarch_data = 0;
  // boot.rst, "acpi_rsdp_addr" (zero-page.rst 0x070): read by kernels of protocol 2.14 and later.
  if (h.version >= 0x020e) bp.acpi_rsdp_addr = f.rsdp;
  bp.e820_entries = uint8_t(f.e820.size());
  for (size_t i = 0; i < f.e820.size(); ++i)
    bp.e820_table[i] = {.addr = f.e820[i].addr, .size = f.e820[i].size, .type = f.e820[i].type};
  return {};
}

}  // namespace evmm::boot
