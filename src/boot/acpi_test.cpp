// ACPI tables parsed back from guest memory the way an OS finds them: from the RSDP.
#include <gtest/gtest.h>

#include <cstring>
#include <map>
#include <string>
#include <vector>

#include "boot/acpi_tables.h"
#include "boot/aml.h"
#include "boot/boot.h"
#include "boot/platform_tables.h"
#include "testing/boot_test_images.h"

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
    auto r = write_platform_tables(mem_, GetParam());
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

// Reads back the only AML the DSDT holds: top-level Name(NAME, Package(){integers...}) objects
// (ACPI 6.4 §20.2.5.1 DefName, §20.2.5.4 DefPackage, §20.2.3 integers). Anything else is a failure.
std::map<std::string, std::vector<uint64_t>> parse_named_packages(const Bytes& aml) {
  std::map<std::string, std::vector<uint64_t>> out;
  size_t i = 0;
  auto need = [&](size_t n) {
    if (i + n <= aml.size()) return true;
    ADD_FAILURE() << "AML ends inside an object at " << i;
    return false;
  };
  while (i < aml.size()) {
    if (!need(6) || aml[i] != 0x08 || aml[i + 5] != 0x12) {
      ADD_FAILURE() << "expected Name(..., Package) at " << i;
      return out;
    }
    std::string name(aml.begin() + i + 1, aml.begin() + i + 5);
    i += 6;
    // PkgLength: bits 7-6 of the lead byte count the bytes that follow (§20.2.4).
    size_t start = i, extra = aml[i] >> 6;
    if (!need(1 + extra)) return out;
    uint64_t len = extra ? aml[i] & 0x0f : aml[i] & 0x3f;
    for (size_t k = 0; k < extra; ++k) len |= uint64_t{aml[i + 1 + k]} << (4 + 8 * k);
    i += 1 + extra;
    size_t end = start + len;
    if (!need(1) || end > aml.size()) {
      ADD_FAILURE() << name << ": package runs past the AML";
      return out;
    }
    unsigned count = aml[i++];
    std::vector<uint64_t>& values = out[name];
    while (i < end) {
      uint8_t op = aml[i++];
      unsigned width = op == 0x0a ? 1 : op == 0x0b ? 2 : op == 0x0c ? 4 : op == 0x0e ? 8 : 0;
      if (op == 0x00 || op == 0x01) {
        values.push_back(op);
      } else if (op == 0xff) {
        values.push_back(~uint64_t{0});
      } else if (width && need(width)) {
        uint64_t v = 0;
        for (unsigned k = 0; k < width; ++k) v |= uint64_t{aml[i + k]} << (8 * k);
        values.push_back(v);
        i += width;
      } else {
        ADD_FAILURE() << name << ": unexpected opcode " << int(op);
        return out;
      }
    }
    EXPECT_EQ(i, end) << name;
    EXPECT_EQ(values.size(), count) << name << ": NumElements";
  }
  return out;
}

TEST_P(AcpiTables, DsdtDeclaresS3AndS5) {
  Bytes aml(p_.dsdt.begin() + sizeof(AcpiHeader), p_.dsdt.end());
  auto objects = parse_named_packages(aml);
  // SLP_TYPa, SLP_TYPb, reserved, reserved (§7.4.2); QEMU's values: S3 = 1, S5 = 0.
  EXPECT_EQ(objects["_S3_"], (std::vector<uint64_t>{1, 1, 0, 0}));
  EXPECT_EQ(objects["_S5_"], (std::vector<uint64_t>{0, 0, 0, 0}));
  EXPECT_EQ(objects.size(), 2u) << "no \\_S1, \\_S2 or \\_S4: those states are not offered";
  EXPECT_EQ(platform::kSlpTypS3, 1);
  EXPECT_EQ(platform::kSlpTypS5, 0);
  // The exact bytes, for a reader that trusts neither builder nor parser.
  Bytes want = {0x08, '_', 'S', '3', '_', 0x12, 0x06, 0x04, 0x01, 0x01, 0x00, 0x00,
                0x08, '_', 'S', '5', '_', 0x12, 0x06, 0x04, 0x00, 0x00, 0x00, 0x00};
  EXPECT_EQ(aml, want);
}

// Two virtio-mmio devices, the exact AML for one of them: Scope(\_SB) { Device(VR00) { _HID, _UID,
// _STA, _CRS } ... }, with a _CRS of Memory32Fixed and an edge, active-high Extended Interrupt.
TEST(AcpiVirtio, DsdtDescribesEachDeviceAsLnro0005) {
  VirtioMmioDesc devs[] = {{0xd0001000, 0x200, 5, true}, {0xd0002000, 0x200, 6, false}};
  Bytes aml = dsdt_aml(devs);
  Bytes plain = dsdt_aml();
  ASSERT_GT(aml.size(), plain.size());
  ASSERT_TRUE(std::equal(plain.begin(), plain.end(), aml.begin()));
  Bytes sb(aml.begin() + plain.size(), aml.end());
  Bytes crs0 = {0x86, 9, 0, 1, 0x00, 0x10, 0x00, 0xd0, 0x00, 0x02, 0, 0,  // Memory32Fixed
                0x89, 6, 0, 0x03, 1, 5, 0, 0, 0,                            // Interrupt, edge, high
                0x79, 0};
  Bytes dev0 = {0x08, '_', 'H', 'I', 'D', 0x0d, 'L', 'N', 'R', 'O', '0', '0', '0', '5', 0,
                0x08, '_', 'U', 'I', 'D', 0x00,
                0x08, '_', 'S', 'T', 'A', 0x0a, 0x0f,
                0x08, '_', 'C', 'R', 'S', 0x11, uint8_t(1 + 2 + crs0.size()), 0x0a, uint8_t(crs0.size())};
  dev0.insert(dev0.end(), crs0.begin(), crs0.end());
  // The device's body is over 63 bytes: a two-byte PkgLength (§20.2.4) that counts itself.
  const size_t body = 4 + dev0.size(), total = body + 2;
  Bytes want = {0x5b, 0x82, uint8_t(0x40 | (total & 0xf)), uint8_t(total >> 4), 'V', 'R', '0', '0'};
  want.insert(want.end(), dev0.begin(), dev0.end());
  // Scope header: 0x10, a two-byte PkgLength, then \_SB_.
  ASSERT_GT(sb.size(), 8 + want.size());
  EXPECT_EQ(sb[0], 0x10);
  EXPECT_EQ(Bytes(sb.begin() + 3, sb.begin() + 8), (Bytes{0x5c, '_', 'S', 'B', '_'}));
  EXPECT_EQ(Bytes(sb.begin() + 8, sb.begin() + 8 + want.size()), want);
  // The second device is not enumerated (_STA 0): its devices reach Linux on the command line.
  Bytes sta1 = {0x08, '_', 'S', 'T', 'A', 0x00};
  EXPECT_NE(std::search(sb.begin() + 8 + want.size(), sb.end(), sta1.begin(), sta1.end()), sb.end());
}

TEST(AcpiVirtio, WindowAbove4GiBIsRefused) {
  GuestMemory mem = make_memory();
  VirtioMmioDesc devs[] = {{0x1'0000'0000, 0x200, 5, true}};
  EXPECT_TRUE(fails_with(write_platform_tables(mem, 1, devs), EINVAL, "below 4 GiB"));
}

// The RTC alarm as a fixed wake event: RTC_STS (bit 10 of PM1_STS) and RTC_EN (bit 10 of PM1_EN)
// live in the PM1a event block at the ACPI PM device, so FIX_RTC must be clear (§5.2.9 table 5.10,
// §4.8.3.1.1). The CMOS layout fields say where the century is and that there is no day or month alarm.
TEST_P(AcpiTables, FadtRtcFields) {
  const AcpiFadt& f = p_.fadt;
  EXPECT_EQ(f.flags & kFadtFixRtc, 0u) << "RTC wake status is in the fixed register space";
  EXPECT_EQ(f.flags & kFadtRtcS4, 0u) << "no S4";
  EXPECT_EQ(f.pm1a_evt_blk, 0x600u);
  EXPECT_EQ(f.x_pm1a_evt_blk.address, 0x600u);
  EXPECT_GE(f.pm1_evt_len * 8 / 2, 11) << "each half of PM1a_EVT_BLK reaches bit 10";
  EXPECT_EQ(f.century, 0x32);
  EXPECT_EQ(f.day_alrm, 0);
  EXPECT_EQ(f.mon_alrm, 0);
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
  EXPECT_TRUE(fails_with(write_platform_tables(mem, 0), EINVAL, "0 vCPUs"));
  EXPECT_TRUE(fails_with(write_platform_tables(mem, 256), EINVAL, "256 vCPUs"));
}

TEST(AcpiFirmware, NeedsTheBiosArea) {
  auto mem = GuestMemory::create({{GuestAddress(0), 0xA0000}});
  ASSERT_TRUE(mem);
  EXPECT_TRUE(fails_with(write_platform_tables(*mem, 1), EFAULT, "BIOS area"));
}

TEST(AcpiFirmware, RewritingClearsStaleTables) {
  auto mem = make_memory();
  ASSERT_TRUE(write_platform_tables(mem, 64));
  ASSERT_TRUE(mem.write(GuestAddress(0xFF000), Bytes{'R', 'S', 'D', ' ', 'P', 'T', 'R', ' '}));
  ASSERT_TRUE(write_platform_tables(mem, 1));
  EXPECT_EQ(read_guest(mem, 0xFF000, 8), Bytes(8, 0));
  Parsed p = parse(mem);
  EXPECT_EQ(p.madt.size(), sizeof(AcpiMadt) + 8 + 12 + 2 * 10 + 6);
}

TEST(AcpiFirmware, BiosDataAreaPointsAtTheEbda) {
  auto mem = make_memory();
  ASSERT_TRUE(write_platform_tables(mem, 1));
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
  Bytes s3 = aml::name("_S3_", aml::package({aml::integer(1), aml::integer(1), aml::integer(0), aml::integer(0)}));
  EXPECT_EQ(s3, (Bytes{0x08, '_', 'S', '3', '_', 0x12, 0x06, 0x04, 0x01, 0x01, 0x00, 0x00}));
  std::vector<Bytes> many(40, aml::integer(0x1234));  // 121-byte body: a two-byte PkgLength
  Bytes pkg = aml::package(many);
  EXPECT_EQ(pkg.size(), 1 + 2 + 1 + 40 * 3u);
  EXPECT_EQ(pkg[1] >> 6, 1);
  auto parsed = parse_named_packages(aml::name("BIG_", pkg));
  EXPECT_EQ(parsed["BIG_"], std::vector<uint64_t>(40, 0x1234)) << "the test's reader handles two-byte PkgLengths";
}

}  // namespace
}  // namespace evmm
