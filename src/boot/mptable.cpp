// The MP configuration table (Intel MP Specification 1.4) in the BIOS ROM area, where §4 says the
// floating pointer may be found: one processor per vCPU, an ISA bus and the IOAPIC in virtual-wire
// mode (no IMCR), as KVM's in-kernel irqchip is wired.
#include <cstring>
#include <vector>

#include "boot/acpi_tables.h"
#include "boot/arena.h"
#include "boot/boot.h"
#include "boot/mptable.h"
#include "boot/platform_tables.h"
#include "memory/layout.h"

namespace evmm::boot {

namespace {

constexpr uint8_t kLapicVersion = 0x14;   // integrated xAPIC
constexpr uint8_t kIoapicVersion = 0x11;  // 82093AA, as KVM's IOAPIC reports
constexpr uint32_t kCpuSignature = 6 << 8;             // family 6
constexpr uint32_t kCpuFeatures = (1 << 0) | (1 << 9);  // FPU, APIC
constexpr uint8_t kIsaBus = 0;
constexpr unsigned kIsaIrqs = 16;

template <typename T>
void append(std::vector<uint8_t>& out, const T& v) {
  auto p = reinterpret_cast<const uint8_t*>(&v);
  out.insert(out.end(), p, p + sizeof v);
}

MpInterrupt io_irq(uint8_t irq, uint8_t pin, uint16_t flags, uint8_t ioapic) {
  return {uint8_t(MpEntry::IoInterrupt), uint8_t(MpIrqType::Int), flags, kIsaBus, irq, ioapic, pin};
}

}  // namespace

Result<void> write_mp_table(const GuestMemory& mem, unsigned cpus) {
  const uint8_t ioapic_id = uint8_t(cpus);
  std::vector<uint8_t> body;
  uint16_t entries = 0;
  for (unsigned i = 0; i < cpus; ++i, ++entries) {
    uint8_t flags = kMpCpuEnabled | (i == 0 ? kMpCpuBootProcessor : 0);
    append(body, MpProcessor{uint8_t(MpEntry::Processor), uint8_t(i), kLapicVersion, flags, kCpuSignature,
                             kCpuFeatures, {0, 0}});
  }
  append(body, MpBus{uint8_t(MpEntry::Bus), kIsaBus, {'I', 'S', 'A', ' ', ' ', ' '}});
  append(body, MpIoApic{uint8_t(MpEntry::IoApic), ioapic_id, kIoapicVersion, 1, uint32_t(layout::kIoapicBase)});
  entries += 2;
  // ISA IRQs: IRQ0 goes to pin 2 as the MADT's override says; IRQ2 is the 8259 cascade and would
  // collide with it, so it has no entry; the SCI is level, active high, as in the MADT.
  for (unsigned irq = 0; irq < kIsaIrqs; ++irq) {
    if (irq == 2) continue;
    uint8_t pin = irq == 0 ? 2 : uint8_t(irq);
    uint16_t flags = irq == platform::kSciIrq ? kIntiActiveHigh | kIntiLevel : 0;
    append(body, io_irq(uint8_t(irq), pin, flags, ioapic_id));
    ++entries;
  }
  // §5.1 virtual wire: the 8259 reaches the BSP through LINT0 as ExtINT; NMIs arrive on LINT1.
  append(body, MpInterrupt{uint8_t(MpEntry::LocalInterrupt), uint8_t(MpIrqType::ExtInt), 0, kIsaBus, 0, 0xff, 0});
  append(body, MpInterrupt{uint8_t(MpEntry::LocalInterrupt), uint8_t(MpIrqType::Nmi), 0, kIsaBus, 0, 0xff, 1});
  entries += 2;

  MpConfigHeader h{};
  std::memcpy(h.signature, "PCMP", 4);
  h.base_length = uint16_t(sizeof h + body.size());
  h.spec_rev = 4;
  std::memcpy(h.oem_id, "EVMM    ", 8);
  std::memcpy(h.product_id, "EVMM        ", 12);
  h.entry_count = entries;
  h.lapic_address = uint32_t(layout::kLapicBase);
  std::vector<uint8_t> table;
  append(table, h);
  table.insert(table.end(), body.begin(), body.end());
  table[offsetof(MpConfigHeader, checksum)] = uint8_t(-acpi_sum(table.data(), table.size()));

  GuestArena area(mem, kMpFloatingPointerAddress, layout::kBiosEnd, "MP table");
  uint64_t fp_at = TRY(area.alloc(sizeof(MpFloatingPointer), 16));
  uint64_t table_at = TRY(area.put(table, 16));
  MpFloatingPointer fp{};
  std::memcpy(fp.signature, "_MP_", 4);
  fp.config_table = uint32_t(table_at);
  fp.length = 1;
  fp.spec_rev = 4;
  fp.checksum = uint8_t(-acpi_sum(reinterpret_cast<const uint8_t*>(&fp), sizeof fp));
  TRY(mem.write_obj(GuestAddress(fp_at), fp));
  return {};
}

}  // namespace evmm::boot
