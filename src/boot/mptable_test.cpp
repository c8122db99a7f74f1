// The MP table, found the way Linux's MP parser finds it: by scanning 0xF0000..0xFFFFF.
#include "boot/mptable.h"

#include <gtest/gtest.h>

#include <cstring>
#include <map>
#include <optional>

#include "boot/acpi_tables.h"
#include "boot/boot.h"
#include "testing/boot_test_images.h"

namespace evmm {
namespace {

using namespace boot;
using namespace boot::test_images;

// The floating pointer's address, scanning 16-byte boundaries (§4: BIOS ROM 0xF0000..0xFFFFF).
std::optional<uint64_t> find_floating_pointer(const GuestMemory& mem) {
  for (uint64_t a = 0xF0000; a < 0x100000; a += 16) {
    auto b = read_guest(mem, a, 16);
    if (std::memcmp(b.data(), "_MP_", 4) == 0 && acpi_sum(b.data(), 16) == 0) return a;
  }
  return std::nullopt;
}

class MptableTest : public ::testing::TestWithParam<unsigned> {};

TEST_P(MptableTest, ChecksumsProcessorsBusIoapicAndInterrupts) {
  const unsigned cpus = GetParam();
  auto mem = make_memory();
  ASSERT_TRUE(write_platform_tables(mem, cpus));
  auto fp_at = find_floating_pointer(mem);
  ASSERT_TRUE(fp_at);
  EXPECT_EQ(*fp_at, kMpFloatingPointerAddress);
  auto fp = *mem.read_obj<MpFloatingPointer>(GuestAddress(*fp_at));
  EXPECT_EQ(fp.length, 1);
  EXPECT_EQ(fp.spec_rev, 4);
  EXPECT_EQ(fp.features[0], 0);  // a configuration table follows, not a default configuration

  auto h = *mem.read_obj<MpConfigHeader>(GuestAddress(fp.config_table));
  EXPECT_EQ(std::string(h.signature, 4), "PCMP");
  ASSERT_GE(h.base_length, sizeof h);
  EXPECT_LE(fp.config_table + h.base_length, layout::kBiosEnd);
  Bytes t = read_guest(mem, fp.config_table, h.base_length);
  EXPECT_EQ(acpi_sum(t.data(), t.size()), 0);
  EXPECT_EQ(h.lapic_address, layout::kLapicBase);

  unsigned processors = 0, bsps = 0, buses = 0, ioapics = 0, entries = 0;
  std::map<uint8_t, uint8_t> irq_to_pin;
  std::map<uint8_t, unsigned> pin_uses;
  std::map<uint8_t, MpInterrupt> lints;
  size_t off = sizeof h;
  while (off < t.size()) {
    ++entries;
    switch (MpEntry(t[off])) {
      case MpEntry::Processor: {
        auto p = get<MpProcessor>(t, off);
        EXPECT_EQ(p.lapic_id, processors);
        EXPECT_TRUE(p.cpu_flags & kMpCpuEnabled);
        if (p.cpu_flags & kMpCpuBootProcessor) {
          ++bsps;
          EXPECT_EQ(p.lapic_id, 0);
        }
        EXPECT_NE(p.cpu_signature, 0u);
        EXPECT_TRUE(p.feature_flags & (1u << 9)) << "APIC feature bit";
        ++processors;
        off += sizeof p;
        break;
      }
      case MpEntry::Bus: {
        auto b = get<MpBus>(t, off);
        EXPECT_EQ(std::string(b.bus_type, 6), "ISA   ");
        ++buses;
        off += sizeof b;
        break;
      }
      case MpEntry::IoApic: {
        auto a = get<MpIoApic>(t, off);
        EXPECT_EQ(a.id, cpus);
        EXPECT_EQ(a.address, layout::kIoapicBase);
        EXPECT_TRUE(a.flags & 1);
        ++ioapics;
        off += sizeof a;
        break;
      }
      case MpEntry::IoInterrupt: {
        auto i = get<MpInterrupt>(t, off);
        EXPECT_EQ(i.dst_id, cpus);
        irq_to_pin[i.src_irq] = i.dst_pin;
        ++pin_uses[i.dst_pin];
        off += sizeof i;
        break;
      }
      case MpEntry::LocalInterrupt: {
        auto i = get<MpInterrupt>(t, off);
        lints[i.dst_pin] = i;
        off += sizeof i;
        break;
      }
      default: FAIL() << "unknown MP entry type " << int(t[off]) << " at " << off;
    }
  }
  EXPECT_EQ(off, t.size());
  EXPECT_EQ(h.entry_count, entries);
  EXPECT_EQ(processors, cpus);
  EXPECT_EQ(bsps, 1u);
  EXPECT_EQ(buses, 1u);
  EXPECT_EQ(ioapics, 1u);
  EXPECT_EQ(irq_to_pin[0], 2);
  EXPECT_EQ(irq_to_pin.size(), 15u);
  for (uint8_t irq = 1; irq < 16; ++irq) {
    if (irq == 2) continue;  // the cascade: no entry, pin 2 belongs to IRQ0
    EXPECT_EQ(irq_to_pin[irq], irq) << "IRQ " << int(irq);
  }
  for (auto [pin, uses] : pin_uses) EXPECT_EQ(uses, 1u) << "IOAPIC pin " << int(pin);
  ASSERT_EQ(lints.size(), 2u);
  EXPECT_EQ(lints[0].irq_type, uint8_t(MpIrqType::ExtInt));
  EXPECT_EQ(lints[1].irq_type, uint8_t(MpIrqType::Nmi));
}

INSTANTIATE_TEST_SUITE_P(Mptable, MptableTest, ::testing::Values(1u, 2u, 64u, 255u));

}  // namespace
}  // namespace evmm
