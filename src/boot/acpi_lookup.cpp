#include "boot/acpi_lookup.h"

#include <array>
#include <cstring>

#include "boot/acpi_tables.h"
#include "boot/boot.h"

namespace evmm::boot {

Result<uint64_t> find_facs(const GuestMemory& mem) {
  auto rsdp = TRY(mem.read_obj<AcpiRsdp>(GuestAddress(kRsdpAddress)));
  if (std::memcmp(rsdp.signature, "RSD PTR ", 8) != 0) return make_error(ENOENT, "no RSDP at {:#x}", kRsdpAddress);
  auto rsdt = TRY(mem.read_obj<AcpiHeader>(GuestAddress(rsdp.rsdt_address)));
  if (std::memcmp(rsdt.signature, "RSDT", 4) != 0) return make_error(ENOENT, "no RSDT at {:#x}", rsdp.rsdt_address);
  if (rsdt.length < sizeof rsdt || rsdt.length > 4096)
    return make_error(ENOENT, "RSDT length {} is out of range", rsdt.length);
  for (uint32_t off = sizeof rsdt; off + 4 <= rsdt.length; off += 4) {
    uint32_t table = TRY(mem.read_obj<uint32_t>(GuestAddress(uint64_t{rsdp.rsdt_address} + off)));
    auto h = TRY(mem.read_obj<AcpiHeader>(GuestAddress(table)));
    if (std::memcmp(h.signature, "FACP", 4) != 0) continue;
    auto fadt = TRY(mem.read_obj<AcpiFadt>(GuestAddress(table)));
    uint64_t facs = fadt.firmware_ctrl;
    using Signature = std::array<char, 4>;
    auto sig = TRY(mem.read_obj<Signature>(GuestAddress(facs)));
    if (std::memcmp(sig.data(), "FACS", 4) != 0) return make_error(ENOENT, "no FACS at {:#x}", facs);
    return facs;
  }
  return make_error(ENOENT, "no FADT in the RSDT");
}

}  // namespace evmm::boot
