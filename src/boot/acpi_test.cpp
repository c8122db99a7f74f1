// ACPI tables parsed back from guest memory the way an OS finds them: from the RSDP.
#include <gtest/gtest.h>

#include <cstring>
#include <map>

#include "boot/acpi_tables.h"
#include "boot/aml.h"
#include "boot/boot.h"
#include "boot/firmware.h"
#include "boot/test_images.h"

namespace evmm {
namespace {

using namespace boot;
using namespace boot::test_images;

std::string sig(const char* p, size_t n) { return std::string(p, n); }

// A table at addr: its signature is checked, its checksum must make every byte sum to 0, and it
// must lie inside the BIOS area.
Bytes table_at(const GuestMemory& mem, uint64_t addr, std::string_view want) {
  EXPECT_GE(addr, layout::kBiosStart);
  auto h = *mem.read_obj<AcpiHeader>(GuestAddress(addr));
  EXPECT_EQ(sig(h.signature, 4), want);
  EXPECT_LE(addr + h.length, layout::kBiosEnd);
  if (h.length < sizeof(AcpiHeader) || h.length > 0x10000) {
    ADD_FAILURE() << want << " has length " << h.length;
    return {};
  }
  Bytes t = read_guest(mem, addr, h.length);
  EXPECT_EQ(acpi_sum(t.data(), t.size()), 0) << want << " checksum";
  EXPECT_EQ(sig(h.oem_id, 6), "EVMM  ");
  return t;
}

template <typename T>
T at(const Bytes& t, size_t off) {
  return get<T>(t, off);
}

struct Parsed {
  AcpiRsdp rsdp;
  std::map<std::string, uint64_t> tables;  // signature -> address, from the XSDT
  AcpiFadt fadt;
  Bytes dsdt, madt;
};

Parsed parse(const GuestMemory& mem) {
  Parsed p{};
  p.rsdp = *mem.read_obj<AcpiRsdp>(GuestAddress(kRsdpAddress));
  EXPECT_EQ(sig(p.rsdp.signature, 8), "RSD PTR ");
  auto raw = read_guest(mem, kRsdpAddress, sizeof(AcpiRsdp));
  EXPECT_EQ(acpi_sum(raw.data(), 20), 0) << "RSDP checksum";
  EXPECT_EQ(acpi_sum(raw.data(), 36), 0) << "RSDP extended checksum";
  EXPECT_EQ(p.rsdp.revision, 2);
  EXPECT_EQ(p.rsdp.length, 36u);
  EXPECT_EQ(kRsdpAddress % 16, 0u);

  Bytes xsdt = table_at(mem, p.rsdp.xsdt_address, "XSDT");
  Bytes rsdt = table_at(mem, p.rsdp.rsdt_address, "RSDT");
  size_t n = (xsdt.size() - sizeof(AcpiHeader)) / 8;
  EXPECT_EQ((rsdt.size() - sizeof(AcpiHeader)) / 4, n);
  for (size_t i = 0; i < n; ++i) {
    uint64_t a = at<uint64_t>(xsdt, sizeof(AcpiHeader) + 8 * i);
    EXPECT_EQ(at<uint32_t>(rsdt, sizeof(AcpiHeader) + 4 * i), a) << "RSDT and XSDT differ at " << i;
    auto h = *mem.read_obj<AcpiHeader>(GuestAddress(a));
    p.tables[sig(h.signature, 4)] = a;
  }
  EXPECT_EQ(p.tables.size(), 2u);
  Bytes fadt = table_at(mem, p.tables["FACP"], "FACP");
  if (fadt.size() == sizeof(AcpiFadt)) p.fadt = get<AcpiFadt>(fadt, 0);
  else ADD_FAILURE() << "FADT is " << fadt.size() << " bytes";
  p.dsdt = table_at(mem, p.fadt.x_dsdt, "DSDT");
  p.madt = table_at(mem, p.tables["APIC"], "APIC");
  return p;
}

class AcpiTables : public ::testing::TestWithParam<unsigned> {
 protected:
  void SetUp() override {
    auto r = write_firmware_tables(mem_, GetParam());
    ASSERT_TRUE(r) << r.error().message();
    p_ = parse(mem_);
  }
  GuestMemory mem_ = make_memory();
  Parsed p_;
};

TEST_P(AcpiTables, FadtPointsAtDsdtAndFacs) {
  const AcpiFadt& f = p_.fadt;
  EXPECT_EQ(f.header.revision, 6);
  EXPECT_EQ(f.header.length, 276u);
  EXPECT_EQ(uint64_t{f.dsdt}, uint64_t{f.x_dsdt});
  EXPECT_EQ(uint64_t{f.firmware_ctrl}, uint64_t{f.x_firmware_ctrl});
  auto facs = *mem_.read_obj<AcpiFacs>(GuestAddress(f.x_firmware_ctrl));
  EXPECT_EQ(sig(facs.signature, 4), "FACS");
  EXPECT_EQ(facs.length, 64u);
  EXPECT_EQ(f.x_firmware_ctrl % 64, 0u);
}

TEST_P(AcpiTables, FadtFixedHardware) {
  const AcpiFadt& f = p_.fadt;
  EXPECT_EQ(f.sci_int, platform::kSciIrq);
  EXPECT_EQ(f.smi_cmd, 0u);
  EXPECT_EQ(f.pm1a_evt_blk, platform::kPm1aEvtPort);
  EXPECT_EQ(f.pm1a_cnt_blk, platform::kPm1aCntPort);
  EXPECT_EQ(f.pm_tmr_blk, platform::kPmTmrPort);
  EXPECT_EQ(f.pm1_evt_len, 4);
  EXPECT_EQ(f.pm1_cnt_len, 2);
  EXPECT_EQ(f.pm_tmr_len, 4);
  // The X_ blocks say the same as the 32-bit ones, in system I/O space.
  EXPECT_EQ(f.x_pm1a_evt_blk.space_id, kGasSystemIo);
  EXPECT_EQ(f.x_pm1a_evt_blk.address, platform::kPm1aEvtPort);
  EXPECT_EQ(f.x_pm1a_evt_blk.bit_width, 32);
  EXPECT_EQ(f.x_pm1a_cnt_blk.address, platform::kPm1aCntPort);
  EXPECT_EQ(f.x_pm1a_cnt_blk.bit_width, 16);
  EXPECT_EQ(uint64_t{f.x_pm_tmr_blk.address}, platform::kPmTmrPort);
  EXPECT_EQ(f.x_pm_tmr_blk.bit_width, 32);
  EXPECT_TRUE(f.iapc_boot_arch & kBootArch8042);
  EXPECT_EQ(f.flags & (kFadtWbinvd | kFadtProcC1 | kFadtSlpButton | kFadtResetRegSup),
            kFadtWbinvd | kFadtProcC1 | kFadtSlpButton | kFadtResetRegSup);
  EXPECT_EQ(f.reset_reg.space_id, kGasSystemIo);
  EXPECT_EQ(f.reset_reg.address, 0x64u);
  EXPECT_EQ(f.reset_value, 0xfe);
}

TEST_P(AcpiTables, DsdtDeclaresS5) {
  // Name(_S5_, Package(4){0, 0, 0, 0}) with SLP_TYP = kSlpTypS5 (0).
  Bytes want = {0x08, '_', 'S', '5', '_', 0x12, 0x06, 0x04, 0x00, 0x00, 0x00, 0x00};
  ASSERT_EQ(platform::kSlpTypS5, 0);
  Bytes aml(p_.dsdt.begin() + sizeof(AcpiHeader), p_.dsdt.end());
  EXPECT_EQ(aml, want);
}

TEST_P(AcpiTables, MadtHasOneLocalApicPerCpuAndOneIoapic) {
  const unsigned cpus = GetParam();
  auto madt = get<AcpiMadt>(p_.madt, 0);
  EXPECT_EQ(madt.local_apic_address, layout::kLapicBase);
  EXPECT_EQ(madt.flags & 1, 1u);  // PCAT_COMPAT
  std::vector<unsigned> apic_ids;
  unsigned ioapics = 0, nmis = 0;
  std::map<uint8_t, MadtInterruptOverride> overrides;
  size_t off = sizeof(AcpiMadt);
  while (off < p_.madt.size()) {
    uint8_t type = p_.madt[off], len = p_.madt[off + 1];
    ASSERT_GE(len, 2);
    ASSERT_LE(off + len, p_.madt.size());
    switch (MadtType(type)) {
      case MadtType::LocalApic: {
        auto e = get<MadtLocalApic>(p_.madt, off);
        ASSERT_EQ(len, sizeof e);
        EXPECT_EQ(e.processor_uid, e.apic_id);
        EXPECT_EQ(e.flags & 1, 1u);
        apic_ids.push_back(e.apic_id);
        break;
      }
      case MadtType::IoApic: {
        auto e = get<MadtIoApic>(p_.madt, off);
        EXPECT_EQ(e.id, cpus);
        EXPECT_EQ(e.address, layout::kIoapicBase);
        EXPECT_EQ(e.gsi_base, 0u);
        ++ioapics;
        break;
      }
      case MadtType::InterruptOverride: {
        auto e = get<MadtInterruptOverride>(p_.madt, off);
        overrides[e.source] = e;
        break;
      }
      case MadtType::LocalApicNmi: {
        auto e = get<MadtLocalApicNmi>(p_.madt, off);
        EXPECT_EQ(e.processor_uid, 0xff);
        EXPECT_EQ(e.lint, 1);
        ++nmis;
        break;
      }
      default: ADD_FAILURE() << "unexpected MADT entry type " << int(type);
    }
    off += len;
  }
  EXPECT_EQ(off, p_.madt.size());
  ASSERT_EQ(apic_ids.size(), cpus);
  for (unsigned i = 0; i < cpus; ++i) EXPECT_EQ(apic_ids[i], i);
  EXPECT_EQ(ioapics, 1u);
  EXPECT_EQ(nmis, 1u);
  ASSERT_EQ(overrides.count(0), 1u);
  EXPECT_EQ(uint32_t{overrides[0].gsi}, 2u);
  ASSERT_EQ(overrides.count(platform::kSciIrq), 1u);
  EXPECT_EQ(uint32_t{overrides[platform::kSciIrq].gsi}, platform::kSciIrq);
  EXPECT_EQ(uint16_t{overrides[platform::kSciIrq].flags}, kIntiActiveHigh | kIntiLevel);
}

INSTANTIATE_TEST_SUITE_P(Acpi, AcpiTables, ::testing::Values(1u, 2u, 64u, 255u));

TEST(AcpiFirmware, CpuCountOutOfRangeIsRefused) {
  auto mem = make_memory();
  EXPECT_TRUE(fails_with(write_firmware_tables(mem, 0), EINVAL, "0 vCPUs"));
  EXPECT_TRUE(fails_with(write_firmware_tables(mem, 256), EINVAL, "256 vCPUs"));
}

TEST(AcpiFirmware, NeedsTheBiosArea) {
  auto mem = GuestMemory::create({{GuestAddress(0), 0xA0000}});
  ASSERT_TRUE(mem);
  EXPECT_TRUE(fails_with(write_firmware_tables(*mem, 1), EFAULT, "BIOS area"));
}

TEST(AcpiFirmware, RewritingClearsStaleTables) {
  auto mem = make_memory();
  ASSERT_TRUE(write_firmware_tables(mem, 64));
  ASSERT_TRUE(mem.write(GuestAddress(0xFF000), Bytes{'R', 'S', 'D', ' ', 'P', 'T', 'R', ' '}));
  ASSERT_TRUE(write_firmware_tables(mem, 1));
  EXPECT_EQ(read_guest(mem, 0xFF000, 8), Bytes(8, 0));
  Parsed p = parse(mem);
  EXPECT_EQ(p.madt.size(), sizeof(AcpiMadt) + 8 + 12 + 2 * 10 + 6);
}

TEST(AcpiFirmware, BiosDataAreaPointsAtTheEbda) {
  auto mem = make_memory();
  ASSERT_TRUE(write_firmware_tables(mem, 1));
  EXPECT_EQ(*mem.read_obj<uint16_t>(GuestAddress(0x40E)), layout::kEbdaStart >> 4);
  EXPECT_EQ(*mem.read_obj<uint16_t>(GuestAddress(0x413)), 639);
}

TEST(AcpiAml, IntegersUseTheShortestEncoding) {
  EXPECT_EQ(aml::integer(0), (Bytes{0x00}));
  EXPECT_EQ(aml::integer(1), (Bytes{0x01}));
  EXPECT_EQ(aml::integer(2), (Bytes{0x0a, 0x02}));
  EXPECT_EQ(aml::integer(0x1234), (Bytes{0x0b, 0x34, 0x12}));
  EXPECT_EQ(aml::integer(0x12345678), (Bytes{0x0c, 0x78, 0x56, 0x34, 0x12}));
  EXPECT_EQ(aml::integer(0x100000000ull), (Bytes{0x0e, 0, 0, 0, 0, 1, 0, 0, 0}));
}

TEST(AcpiAml, PkgLengthEncodings) {
  EXPECT_EQ(aml::pkg_length(5), (Bytes{0x06}));
  EXPECT_EQ(aml::pkg_length(62), (Bytes{0x3f}));
  // 63 + 2 = 65 = 0x41: lead byte 0x40 | 0x1, then 0x41 >> 4.
  EXPECT_EQ(aml::pkg_length(63), (Bytes{0x41, 0x04}));
  EXPECT_EQ(aml::pkg_length(4093), (Bytes{0x4f, 0xff}));
  EXPECT_EQ(aml::pkg_length(4094), (Bytes{0x81, 0x00, 0x01}));  // 4094 + 3 = 0x1001
}

TEST(AcpiAml, NamesAndPackages) {
  EXPECT_EQ(aml::name_seg("_S3"), (Bytes{'_', 'S', '3', '_'}));
  // The _S3_ package later work adds: SLP_TYP 1.
  Bytes s3 = aml::name("_S3_", aml::package({aml::integer(1), aml::integer(1), aml::integer(0), aml::integer(0)}));
  EXPECT_EQ(s3, (Bytes{0x08, '_', 'S', '3', '_', 0x12, 0x06, 0x04, 0x01, 0x01, 0x00, 0x00}));
  std::vector<Bytes> many(40, aml::integer(0x1234));  // 121-byte body: a two-byte PkgLength
  Bytes pkg = aml::package(many);
  EXPECT_EQ(pkg.size(), 1 + 2 + 1 + 40 * 3u);
  EXPECT_EQ(pkg[1] >> 6, 1);
}

}  // namespace
}  // namespace evmm
