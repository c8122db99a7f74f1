// ACPI tables (ACPI 6.4 chapter 5) for evmm's PC: the fixed hardware lives at the ports of
// platform:: (QEMU's PIIX4 PM layout), with SMI_CMD = 0 so the guest finds ACPI already enabled.
#include <cstring>
#include <string_view>

#include "boot/acpi_tables.h"
#include "boot/arena.h"
#include "boot/boot.h"
#include "boot/platform_tables.h"
#include "memory/layout.h"

namespace evmm::boot {

namespace {

using aml::Bytes;

constexpr char kOemId[6] = {'E', 'V', 'M', 'M', ' ', ' '};

template <typename T>
void append(Bytes& out, const T& v) {
  auto p = reinterpret_cast<const uint8_t*>(&v);
  out.insert(out.end(), p, p + sizeof v);
}

AcpiHeader header(std::string_view sig, uint8_t revision) {
  AcpiHeader h{};
  std::memcpy(h.signature, sig.data(), 4);
  h.revision = revision;
  std::memcpy(h.oem_id, kOemId, 6);
  std::memcpy(h.oem_table_id, "EVMM", 4);  // then the signature: "EVMMFACP", "EVMMAPIC", ...
  std::memcpy(h.oem_table_id + 4, sig.data(), 4);
  h.oem_revision = 1;
  std::memcpy(h.creator_id, "EVMM", 4);
  h.creator_revision = 1;
  return h;
}

// Sets the header's length to the table's size, then its checksum so that all bytes sum to 0.
Bytes finish(Bytes table) {
  uint32_t len = uint32_t(table.size());
  std::memcpy(table.data() + offsetof(AcpiHeader, length), &len, 4);
  table[offsetof(AcpiHeader, checksum)] = 0;
  table[offsetof(AcpiHeader, checksum)] = uint8_t(-acpi_sum(table.data(), table.size()));
  return table;
}

AcpiGas io_gas(uint16_t port, uint8_t bits, uint8_t access) {
  return AcpiGas{.space_id = kGasSystemIo, .bit_width = bits, .bit_offset = 0, .access_size = access, .address = port};
}

// \_Sx packages (§7.4.2): SLP_TYPa, SLP_TYPb, then two reserved values.
Bytes sleep_package(std::string_view name, uint8_t slp_typ) {
  return aml::name(name, aml::package({aml::integer(slp_typ), aml::integer(slp_typ), aml::integer(0), aml::integer(0)}));
}

Bytes build_dsdt(std::span<const VirtioMmioDesc> virtio) {
  Bytes t;
  append(t, header("DSDT", 2));  // revision 2: 64-bit AML integers
  Bytes body = dsdt_aml(virtio);
  t.insert(t.end(), body.begin(), body.end());
  return finish(std::move(t));
}

Bytes build_fadt(uint64_t facs, uint64_t dsdt) {
  using namespace platform;
  AcpiFadt f{};
  f.header = header("FACP", 6);
  f.firmware_ctrl = uint32_t(facs);
  f.dsdt = uint32_t(dsdt);
  f.sci_int = kSciIrq;
  f.smi_cmd = 0;  // no SMI command port: the platform is in ACPI mode from reset (§4.8.2.1.1)
  f.pm1a_evt_blk = kPm1aEvtPort;
  f.pm1a_cnt_blk = kPm1aCntPort;
  f.pm_tmr_blk = kPmTmrPort;
  f.pm1_evt_len = 4;
  f.pm1_cnt_len = 2;
  f.pm_tmr_len = 4;
  f.p_lvl2_lat = 101;   // > 100: C2 not supported
  f.p_lvl3_lat = 1001;  // > 1000: C3 not supported
  // The RTC keeps the century in CMOS; it has no day or month alarm, so DAY_ALRM and MON_ALRM
  // stay 0 (§5.2.9 table 5.9), as in QEMU's FADT.
  f.century = kCmosCentury;
  f.iapc_boot_arch = kBootArchLegacyDevices | kBootArch8042 | kBootArchNoVga;
  // FIX_RTC stays clear: RTC_STS and RTC_EN live in PM1a (devices/acpi_pm.h), so the RTC alarm is a
  // fixed wake event. RTC_S4 stays clear too: there is no \_S4 to wake from.
  f.flags = kFadtWbinvd | kFadtProcC1 | kFadtSlpButton | kFadtResetRegSup;
  // Reset through the i8042's pulse-reset command, which evmm's i8042 implements.
  f.reset_reg = io_gas(kI8042CmdPort, 8, 1);
  f.reset_value = 0xfe;
  f.x_firmware_ctrl = facs;
  f.x_dsdt = dsdt;
  f.x_pm1a_evt_blk = io_gas(kPm1aEvtPort, 32, 2);
  f.x_pm1a_cnt_blk = io_gas(kPm1aCntPort, 16, 2);
  f.x_pm_tmr_blk = io_gas(kPmTmrPort, 32, 3);
  Bytes t;
  append(t, f);
  return finish(std::move(t));
}

Bytes build_madt(unsigned cpus) {
  Bytes t;
  append(t, AcpiMadt{.header = header("APIC", 4), .local_apic_address = uint32_t(layout::kLapicBase), .flags = 1});
  for (unsigned i = 0; i < cpus; ++i)
    append(t, MadtLocalApic{uint8_t(MadtType::LocalApic), sizeof(MadtLocalApic), uint8_t(i), uint8_t(i), 1});
  append(t, MadtIoApic{uint8_t(MadtType::IoApic), sizeof(MadtIoApic), uint8_t(cpus), 0, uint32_t(layout::kIoapicBase), 0});
  // The PIT's IRQ0 arrives on IOAPIC pin 2 (§5.2.12.5); the SCI is level, active high (§5.2.9).
  append(t, MadtInterruptOverride{uint8_t(MadtType::InterruptOverride), sizeof(MadtInterruptOverride), 0, 0, 2, 0});
  append(t, MadtInterruptOverride{uint8_t(MadtType::InterruptOverride), sizeof(MadtInterruptOverride), 0,
                                  platform::kSciIrq, platform::kSciIrq, kIntiActiveHigh | kIntiLevel});
  append(t, MadtLocalApicNmi{uint8_t(MadtType::LocalApicNmi), sizeof(MadtLocalApicNmi), 0xff, 0, 1});
  return finish(std::move(t));
}

template <typename Ptr>
Bytes build_sdt(std::string_view sig, std::initializer_list<uint64_t> tables) {
  Bytes t;
  append(t, header(sig, 1));
  for (uint64_t a : tables) append(t, Ptr(a));
  return finish(std::move(t));
}

AcpiRsdp build_rsdp(uint64_t rsdt, uint64_t xsdt) {
  AcpiRsdp r{};
  std::memcpy(r.signature, "RSD PTR ", 8);
  std::memcpy(r.oem_id, kOemId, 6);
  r.revision = 2;
  r.rsdt_address = uint32_t(rsdt);
  r.length = sizeof r;
  r.xsdt_address = xsdt;
  auto p = reinterpret_cast<const uint8_t*>(&r);
  r.checksum = uint8_t(-acpi_sum(p, 20));
  r.extended_checksum = uint8_t(-acpi_sum(p, sizeof r));
  return r;
}

}  // namespace

// \_S3 and \_S5 with QEMU's SLP_TYP values, so a guest written for QEMU's PIIX4 PM sleeps the same way
// here. \_S3 is what an OS needs to offer suspend-to-RAM; what S3 does is the VMM's policy
// (AcpiPm::set_sleep_handler).
Bytes dsdt_aml(std::span<const VirtioMmioDesc> virtio) {
  Bytes aml = sleep_package("_S3_", platform::kSlpTypS3);
  Bytes s5 = sleep_package("_S5_", platform::kSlpTypS5);
  aml.insert(aml.end(), s5.begin(), s5.end());
  if (virtio.empty()) return aml;
  // Device(VRnn) { _HID "LNRO0005", _UID n, _STA, _CRS }, as Linux's virtio_mmio ACPI match expects.
  Bytes devices;
  for (size_t i = 0; i < virtio.size(); ++i) {
    const VirtioMmioDesc& d = virtio[i];
    Bytes crs = aml::resource::memory32_fixed(uint32_t(d.base), d.size);
    Bytes irq = aml::resource::interrupt(d.gsi, /*edge=*/true, /*active_high=*/true);
    Bytes end = aml::resource::end_tag();
    crs.insert(crs.end(), irq.begin(), irq.end());
    crs.insert(crs.end(), end.begin(), end.end());
    Bytes body = aml::name("_HID", aml::string("LNRO0005"));
    for (const Bytes& b : {aml::name("_UID", aml::integer(i)), aml::name("_STA", aml::integer(d.enumerate ? 0x0f : 0)),
                           aml::name("_CRS", aml::buffer(crs))})
      body.insert(body.end(), b.begin(), b.end());
    Bytes dev = aml::device(fmt::format("VR{:02X}", i), body);
    devices.insert(devices.end(), dev.begin(), dev.end());
  }
  Bytes sb = aml::scope("_SB_", devices);
  aml.insert(aml.end(), sb.begin(), sb.end());
  return aml;
}

Result<void> write_acpi_tables(const GuestMemory& mem, unsigned cpus, std::span<const VirtioMmioDesc> virtio) {
  GuestArena area(mem, kRsdpAddress, kMpFloatingPointerAddress, "ACPI tables");
  uint64_t rsdp = TRY(area.alloc(sizeof(AcpiRsdp), 16));
  AcpiFacs facs{};
  std::memcpy(facs.signature, "FACS", 4);
  facs.length = sizeof facs;
  facs.version = 2;
  uint64_t facs_at = TRY(area.put_obj(facs, 64));  // §5.2.10: 64-byte aligned
  uint64_t dsdt = TRY(area.put(build_dsdt(virtio), 16));
  uint64_t fadt = TRY(area.put(build_fadt(facs_at, dsdt), 16));
  uint64_t madt = TRY(area.put(build_madt(cpus), 16));
  // An RSDT as well as the XSDT, for 32-bit guests that only know ACPI 1.0.
  uint64_t rsdt = TRY(area.put(build_sdt<uint32_t>("RSDT", {fadt, madt}), 16));
  uint64_t xsdt = TRY(area.put(build_sdt<uint64_t>("XSDT", {fadt, madt}), 16));
  TRY(mem.write_obj(GuestAddress(rsdp), build_rsdp(rsdt, xsdt)));
  return {};
}

}  // namespace evmm::boot
