// write_platform_tables: what a PC BIOS would have left in memory for the OS to find.
#include "boot/platform_tables.h"

#include "boot/boot.h"
#include "memory/layout.h"

namespace evmm {

namespace {

// IBM PC BIOS Data Area words that MP spec §4 and Linux (reserve_bios_regions) read to find the
// EBDA: its segment, and the size of base memory below it in KiB.
constexpr uint64_t kBdaEbdaSegment = 0x40E;
constexpr uint64_t kBdaBaseMemoryKib = 0x413;

}  // namespace

Result<void> write_platform_tables(const GuestMemory& mem, unsigned cpus, std::span<const VirtioMmioDesc> virtio) {
  using boot::kMaxCpus;
  if (cpus == 0 || cpus > kMaxCpus)
    return make_error(EINVAL, "firmware tables: {} vCPUs; the ACPI and MP tables describe 1 to {} (8-bit APIC IDs)",
                      cpus, kMaxCpus);
  // Stale tables from an earlier boot must not survive a reset.
  TRY_CTX(mem.fill(GuestAddress(layout::kBiosStart), 0, layout::kBiosEnd - layout::kBiosStart),
          "firmware tables need RAM behind the BIOS area");
  TRY_CTX(mem.write_obj<uint16_t>(GuestAddress(kBdaEbdaSegment), uint16_t(layout::kEbdaStart >> 4)),
          "writing the BIOS data area");
  TRY_CTX(mem.write_obj<uint16_t>(GuestAddress(kBdaBaseMemoryKib), uint16_t(layout::kEbdaStart / layout::KiB)),
          "writing the BIOS data area");
  for (const auto& d : virtio)
    if (d.base + d.size > (1ull << 32) || d.base + d.size < d.base)
      return make_error(EINVAL, "firmware tables: a virtio-mmio window at {:#x} is not below 4 GiB", d.base);
  TRY_CTX(boot::write_acpi_tables(mem, cpus, virtio), "firmware tables");
  TRY_CTX(boot::write_mp_table(mem, cpus), "firmware tables");
  return {};
}

}  // namespace evmm
