// ACPI table layouts (ACPI 6.4 chapter 5), exactly as they appear in guest memory. No system header
// carries them, so they are spelled out here with their sizes checked against the specification.
#pragma once

#include <cstddef>
#include <cstdint>

namespace evmm::boot {

#pragma pack(push, 1)
// §5.2.5.3 Root System Description Pointer, revision 2.
struct AcpiRsdp {
  char signature[8];  // "RSD PTR "
  uint8_t checksum;   // over the first 20 bytes (the ACPI 1.0 structure)
  char oem_id[6];
  uint8_t revision;
  uint32_t rsdt_address;
  uint32_t length;
  uint64_t xsdt_address;
  uint8_t extended_checksum;  // over all 36 bytes
  uint8_t reserved[3];
};
static_assert(sizeof(AcpiRsdp) == 36);

// §5.2.6 System Description Table Header.
struct AcpiHeader {
  char signature[4];
  uint32_t length;
  uint8_t revision;
  uint8_t checksum;
  char oem_id[6];
  char oem_table_id[8];
  uint32_t oem_revision;
  char creator_id[4];
  uint32_t creator_revision;
};
static_assert(sizeof(AcpiHeader) == 36);

// §5.2.3.2 Generic Address Structure.
struct AcpiGas {
  uint8_t space_id;  // 1 = system I/O
  uint8_t bit_width;
  uint8_t bit_offset;
  uint8_t access_size;  // 1 byte, 2 word, 3 dword, 4 qword
  uint64_t address;
};
static_assert(sizeof(AcpiGas) == 12);

// §5.2.9 Fixed ACPI Description Table, revision 6.
struct AcpiFadt {
  AcpiHeader header;
  uint32_t firmware_ctrl;
  uint32_t dsdt;
  uint8_t reserved0;
  uint8_t preferred_pm_profile;
  uint16_t sci_int;
  uint32_t smi_cmd;
  uint8_t acpi_enable, acpi_disable, s4bios_req, pstate_cnt;
  uint32_t pm1a_evt_blk, pm1b_evt_blk, pm1a_cnt_blk, pm1b_cnt_blk, pm2_cnt_blk, pm_tmr_blk;
  uint32_t gpe0_blk, gpe1_blk;
  uint8_t pm1_evt_len, pm1_cnt_len, pm2_cnt_len, pm_tmr_len, gpe0_blk_len, gpe1_blk_len, gpe1_base, cst_cnt;
  uint16_t p_lvl2_lat, p_lvl3_lat, flush_size, flush_stride;
  uint8_t duty_offset, duty_width, day_alrm, mon_alrm, century;
  uint16_t iapc_boot_arch;
  uint8_t reserved1;
  uint32_t flags;
  AcpiGas reset_reg;
  uint8_t reset_value;
  uint16_t arm_boot_arch;
  uint8_t minor_version;
  uint64_t x_firmware_ctrl;
  uint64_t x_dsdt;
  AcpiGas x_pm1a_evt_blk, x_pm1b_evt_blk, x_pm1a_cnt_blk, x_pm1b_cnt_blk, x_pm2_cnt_blk, x_pm_tmr_blk;
  AcpiGas x_gpe0_blk, x_gpe1_blk;
  AcpiGas sleep_control_reg, sleep_status_reg;
  uint64_t hypervisor_vendor_id;
};
static_assert(sizeof(AcpiFadt) == 276);
static_assert(offsetof(AcpiFadt, iapc_boot_arch) == 109 && offsetof(AcpiFadt, flags) == 112);
static_assert(offsetof(AcpiFadt, x_dsdt) == 140 && offsetof(AcpiFadt, x_pm_tmr_blk) == 208);

// §5.2.10 Firmware ACPI Control Structure (no checksum).
struct AcpiFacs {
  char signature[4];  // "FACS"
  uint32_t length;
  uint32_t hardware_signature;
  uint32_t firmware_waking_vector;
  uint32_t global_lock;
  uint32_t flags;
  uint64_t x_firmware_waking_vector;
  uint8_t version;
  uint8_t reserved[3];
  uint32_t ospm_flags;
  uint8_t reserved2[24];
};
static_assert(sizeof(AcpiFacs) == 64);

// §5.2.12 Multiple APIC Description Table and its interrupt controller structures.
struct AcpiMadt {
  AcpiHeader header;
  uint32_t local_apic_address;
  uint32_t flags;
};
static_assert(sizeof(AcpiMadt) == 44);

enum class MadtType : uint8_t { LocalApic = 0, IoApic = 1, InterruptOverride = 2, LocalApicNmi = 4 };

struct MadtLocalApic {  // §5.2.12.2
  uint8_t type, length;
  uint8_t processor_uid;
  uint8_t apic_id;
  uint32_t flags;
};
struct MadtIoApic {  // §5.2.12.3
  uint8_t type, length;
  uint8_t id;
  uint8_t reserved;
  uint32_t address;
  uint32_t gsi_base;
};
struct MadtInterruptOverride {  // §5.2.12.5
  uint8_t type, length;
  uint8_t bus;  // 0 = ISA
  uint8_t source;
  uint32_t gsi;
  uint16_t flags;  // MPS INTI flags
};
struct MadtLocalApicNmi {  // §5.2.12.7
  uint8_t type, length;
  uint8_t processor_uid;  // 0xff = all processors
  uint16_t flags;
  uint8_t lint;
};
static_assert(sizeof(MadtLocalApic) == 8 && sizeof(MadtIoApic) == 12);
static_assert(sizeof(MadtInterruptOverride) == 10 && sizeof(MadtLocalApicNmi) == 6);
#pragma pack(pop)

// MPS INTI flags (§5.2.12.5 table 5.26), shared with the MP table's interrupt entries.
constexpr uint16_t kIntiActiveHigh = 0x1;
constexpr uint16_t kIntiLevel = 0xc;

// FADT flags (§5.2.9 table 5.10) and IA-PC boot architecture flags (§5.2.9.3 table 5.11).
constexpr uint32_t kFadtWbinvd = 1u << 0;
constexpr uint32_t kFadtProcC1 = 1u << 2;
constexpr uint32_t kFadtSlpButton = 1u << 5;
// Set, it says RTC wake status is not in the fixed register space (no RTC_STS/RTC_EN in PM1).
constexpr uint32_t kFadtFixRtc = 1u << 6;
constexpr uint32_t kFadtRtcS4 = 1u << 7;
constexpr uint32_t kFadtResetRegSup = 1u << 10;
constexpr uint16_t kBootArchLegacyDevices = 1u << 0;
constexpr uint16_t kBootArch8042 = 1u << 1;
constexpr uint16_t kBootArchNoVga = 1u << 2;

constexpr uint8_t kGasSystemIo = 1;

// Sum of all bytes, which a valid table makes 0 (§5.2.6 Checksum).
inline uint8_t acpi_sum(const uint8_t* p, size_t n) {
  uint8_t s = 0;
  for (size_t i = 0; i < n; ++i) s = uint8_t(s + p[i]);
  return s;
}

}  // namespace evmm::boot
