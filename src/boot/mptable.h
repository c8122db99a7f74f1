// Intel MultiProcessor Specification 1.4 structures (chapter 4), for guests that predate ACPI.
#pragma once

#include <cstdint>

namespace evmm::boot {

#pragma pack(push, 1)
struct MpFloatingPointer {  // §4.1
  char signature[4];        // "_MP_"
  uint32_t config_table;
  uint8_t length;           // in 16-byte units: 1
  uint8_t spec_rev;         // 4 = version 1.4
  uint8_t checksum;
  uint8_t features[5];      // feature 1 = 0: a configuration table is present; feature 2 bit 7 = IMCRP
};
static_assert(sizeof(MpFloatingPointer) == 16);

struct MpConfigHeader {  // §4.2
  char signature[4];     // "PCMP"
  uint16_t base_length;
  uint8_t spec_rev;
  uint8_t checksum;
  char oem_id[8];
  char product_id[12];
  uint32_t oem_table;
  uint16_t oem_table_size;
  uint16_t entry_count;
  uint32_t lapic_address;
  uint16_t ext_length;
  uint8_t ext_checksum;
  uint8_t reserved;
};
static_assert(sizeof(MpConfigHeader) == 44);

enum class MpEntry : uint8_t { Processor = 0, Bus = 1, IoApic = 2, IoInterrupt = 3, LocalInterrupt = 4 };
enum class MpIrqType : uint8_t { Int = 0, Nmi = 1, Smi = 2, ExtInt = 3 };

constexpr uint8_t kMpCpuEnabled = 1 << 0;
constexpr uint8_t kMpCpuBootProcessor = 1 << 1;

struct MpProcessor {  // §4.3.1
  uint8_t type;
  uint8_t lapic_id;
  uint8_t lapic_version;
  uint8_t cpu_flags;
  uint32_t cpu_signature;  // CPUID.1 EAX: stepping, model, family
  uint32_t feature_flags;  // CPUID.1 EDX
  uint32_t reserved[2];
};
struct MpBus {  // §4.3.2
  uint8_t type;
  uint8_t bus_id;
  char bus_type[6];
};
struct MpIoApic {  // §4.3.3
  uint8_t type;
  uint8_t id;
  uint8_t version;
  uint8_t flags;  // bit 0: enabled
  uint32_t address;
};
struct MpInterrupt {  // §4.3.4 I/O and §4.3.5 local interrupt assignment
  uint8_t type;
  uint8_t irq_type;
  uint16_t flags;  // polarity bits 0-1, trigger bits 2-3, as the MPS INTI flags
  uint8_t src_bus;
  uint8_t src_irq;
  uint8_t dst_id;   // IOAPIC ID, or local APIC ID (0xff: all)
  uint8_t dst_pin;  // IOAPIC INTIN#, or LINTIN#
};
static_assert(sizeof(MpProcessor) == 20 && sizeof(MpBus) == 8 && sizeof(MpIoApic) == 8 && sizeof(MpInterrupt) == 8);
#pragma pack(pop)

}  // namespace evmm::boot
