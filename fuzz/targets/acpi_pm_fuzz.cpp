// ACPI PM1a and the PM timer (devices/acpi_pm.h) driven by a guest's register accesses while time
// passes. Input: one byte whose bit 0 installs a sleep handler, then device_ops.h operations at
// port 0x600; the extra op is tick() when arg bit 0 is set, else raise_status(next 2 bytes).
// Invariants from acpi_pm.h: an access that touches offsets 6-7 (or is 8 bytes wide) reads
// all-ones; SCI_EN always reads 1; PM_TMR counts at 3.579545 MHz from 0 in 24 bits; the SCI is
// asserted exactly while PM1_STS & PM1_EN has TMR, PWRBTN or RTC set; SLP_EN with SLP_TYP 0 (S5)
// powers off, any other type goes to the sleep handler or is counted as unsupported.
#include <memory>
#include <vector>

#include "bus/io_bus.h"
#include "device_ops.h"
#include "devices/acpi_pm.h"
#include "testing/device_test_fakes.h"
#include "memory/layout.h"

using namespace evmm;

namespace {

bool covers(const fuzz::Op& op, uint64_t byte) { return op.offset <= byte && byte < op.offset + op.width; }

// Accesses the device serves: widths 1, 2 and 4 inside the range, clear of offsets 6-7.
bool served(const fuzz::Op& op) {
  return op.width <= 4 && op.offset + op.width <= AcpiPm::kRangeLen && !covers(op, 6) && !covers(op, 7);
}

uint64_t expected_ticks(int64_t elapsed_ns) {
  return static_cast<uint64_t>(static_cast<unsigned __int128>(elapsed_ns) * AcpiPm::kTimerHz / kNsPerSec);
}

}  // namespace

extern "C" int LLVMFuzzerInitialize(int*, char***) {
  fuzz_quiet_logs();
  return 0;
}

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  fuzz::Input in(data, size);
  const bool with_handler = in.u8() & 1;
  testing::FakeVmStopHandler vm;
  testing::FakeInterruptLine sci;
  testing::FakeClock clock;
  const int64_t epoch = clock.monotonic_ns();
  auto pm = std::make_shared<AcpiPm>(vm, sci, clock);
  std::vector<uint8_t> sleeps;
  if (with_handler) pm->set_sleep_handler([&](uint8_t typ) { sleeps.push_back(typ); });
  IoBus bus("pio");
  FUZZ_CHECK(bus.insert(platform::kPm1aEvtPort, AcpiPm::kRangeLen, pm, "acpi-pm"));

  uint8_t slp_typ = 0;  // PM1_CNT.SLP_TYP as the guest last wrote it
  fuzz::Op op;
  while (fuzz::next_op(in, &op)) {
    switch (op.kind) {
      case fuzz::Op::Read: {
        bus.read(platform::kPm1aEvtPort + op.offset, op.bytes(), 0);
        if (!served(op)) {
          FUZZ_CHECK(fuzz::all_ones(op.bytes()));
          break;
        }
        if (covers(op, AcpiPm::kCntOffset)) FUZZ_CHECK(op.data[AcpiPm::kCntOffset - op.offset] & AcpiPm::kSciEn);
        if (op.offset == AcpiPm::kTmrOffset && op.width == 4) {
          uint32_t tmr = static_cast<uint32_t>(fuzz::Input(op.data.data(), 4).le(4));
          FUZZ_CHECK(tmr == (expected_ticks(clock.monotonic_ns() - epoch) & 0xffffff));
        }
        if (op.offset == 0 && op.width == 4) {
          uint16_t sts = static_cast<uint16_t>(op.data[0] | op.data[1] << 8);
          uint16_t en = static_cast<uint16_t>(op.data[2] | op.data[3] << 8);
          constexpr uint16_t kSciSources = AcpiPm::kTmrSts | AcpiPm::kPwrBtnSts | AcpiPm::kRtcSts;
          FUZZ_CHECK(sci.level() == ((sts & en & kSciSources) != 0));
        }
        break;
      }
      case fuzz::Op::Write: {
        size_t stops = vm.stops().size(), handled = sleeps.size();
        uint64_t unsupported = pm->stats().unsupported_sleeps;
        bus.write(platform::kPm1aEvtPort + op.offset, op.bytes(), 0);
        bool slp_en = false;
        if (served(op) && covers(op, 5)) {
          uint8_t hi = op.data[5 - op.offset];  // PM1_CNT bits 15:8
          slp_typ = (hi >> 2) & 7;
          slp_en = hi & (AcpiPm::kSlpEn >> 8);
        }
        bool off = slp_en && slp_typ == platform::kSlpTypS5;
        FUZZ_CHECK(vm.stops().size() == stops + (off ? 1 : 0));
        if (off) FUZZ_CHECK(vm.stops().back().first == StopReason::PowerOff && vm.stops().back().second == 0);
        bool to_handler = slp_en && !off && with_handler;
        FUZZ_CHECK(sleeps.size() == handled + (to_handler ? 1 : 0));
        if (to_handler) FUZZ_CHECK(sleeps.back() == slp_typ);
        FUZZ_CHECK(pm->stats().unsupported_sleeps == unsupported + (slp_en && !off && !with_handler ? 1 : 0));
        break;
      }
      case fuzz::Op::Clock:
        clock.advance(static_cast<int64_t>(op.value));
        break;
      case fuzz::Op::Extra:
        if (op.arg & 1) pm->tick();
        else pm->raise_status(static_cast<uint16_t>(in.le(2)));
        break;
    }
  }
  return 0;
}
