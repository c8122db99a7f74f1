// The MC146818 RTC and CMOS (devices/rtc.h) driven by a guest's index/data accesses while time
// passes. Input: 4 bytes of initial wall time (seconds since 1970, LE), then device_ops.h
// operations at port 0x70; the extra op is the timer thread's tick().
// Invariants from rtc.h: both ports are one byte wide (other widths read all-ones); the index port
// reads 0xff; the clock registers hold valid BCD unless register B selects binary; reading register
// C reports IRQF exactly when an enabled flag is set, and leaves the IRQ line deasserted; the
// clock spans 1900-2199, so at the end its century is sane; until the guest sets or stops the
// clock, its registers show the fake wall time as gmtime() reads it.
#include <time.h>

#include <memory>

#include "bus/io_bus.h"
#include "device_ops.h"
#include "testing/device_test_fakes.h"
#include "devices/rtc.h"
#include "memory/layout.h"

using namespace evmm;

namespace {

constexpr uint8_t kRegB = 0x0b, kRegC = 0x0c, kCentury = 0x32;
constexpr uint8_t kBSet = 0x80, kBUie = 0x10, kBBinary = 0x04, kB24Hour = 0x02;
constexpr uint8_t kCIrqf = 0x80, kCFlags = 0x70;

// Seconds, minutes, hours, weekday, day, month, year and century (MC146818A, Figure 4).
bool is_clock_register(uint8_t index) {
  switch (index) {
    case 0x00: case 0x02: case 0x04: case 0x06: case 0x07: case 0x08: case 0x09: case 0x32: return true;
    default: return false;
  }
}

bool valid_bcd(uint8_t v) { return (v & 0x0f) <= 9 && (v >> 4) <= 9; }

// What a clock register reads at wall time secs, by the C library's calendar rather than evmm's.
uint8_t expected_clock_register(uint8_t index, int64_t secs, uint8_t reg_b) {
  time_t t = static_cast<time_t>(secs);
  tm f{};
  FUZZ_CHECK(gmtime_r(&t, &f));
  auto enc = [&](int v) { return static_cast<uint8_t>((reg_b & kBBinary) ? v : (v / 10) << 4 | v % 10); };
  int year = f.tm_year + 1900;
  switch (index) {
    case 0x00: return enc(f.tm_sec);
    case 0x02: return enc(f.tm_min);
    case 0x04:
      if (reg_b & kB24Hour) return enc(f.tm_hour);
      return static_cast<uint8_t>(enc(f.tm_hour % 12 == 0 ? 12 : f.tm_hour % 12) | (f.tm_hour >= 12 ? 0x80 : 0));
    case 0x06: return enc(f.tm_wday + 1);  // Sunday is 1
    case 0x07: return enc(f.tm_mday);
    case 0x08: return enc(f.tm_mon + 1);
    case 0x09: return enc(year % 100);
    default: return enc(year / 100);
  }
}

}  // namespace

extern "C" int LLVMFuzzerInitialize(int*, char***) {
  fuzz_quiet_logs();
  return 0;
}

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  fuzz::Input in(data, size);
  testing::FakeClock clock;
  clock.set_realtime(static_cast<int64_t>(in.le(4)) * kNsPerSec);
  testing::FakeInterruptLine irq;
  auto rtc = std::make_shared<Rtc>(irq, clock);
  IoBus bus("pio");
  FUZZ_CHECK(bus.insert(platform::kRtcPort, Rtc::kRangeLen, rtc, "rtc"));

  uint8_t index = 0;
  uint8_t reg_b = kB24Hour;  // what the device starts with, then what the guest wrote
  bool host_time = true;     // until the guest sets the clock or stops it, it shows the host's time
  fuzz::Op op;
  while (fuzz::next_op(in, &op)) {
    bool one_byte = op.width == 1 && op.offset < Rtc::kRangeLen;
    switch (op.kind) {
      case fuzz::Op::Read: {
        bus.read(platform::kRtcPort + op.offset, op.bytes(), 0);
        uint8_t v = op.data[0];
        if (!one_byte || op.offset == 0) {
          FUZZ_CHECK(fuzz::all_ones(op.bytes()));
        } else if (index == kRegC) {
          FUZZ_CHECK(((v & kCIrqf) != 0) == ((v & reg_b & kCFlags) != 0));
          FUZZ_CHECK(!irq.level());
        } else if (is_clock_register(index)) {
          if (host_time) FUZZ_CHECK(v == expected_clock_register(index, clock.realtime_ns() / kNsPerSec, reg_b));
          // In 12-hour mode bit 7 of the hours is the PM flag, not part of the BCD value.
          if (index == 0x04 && !(reg_b & kB24Hour)) v &= 0x7f;
          if (!(reg_b & kBBinary)) FUZZ_CHECK(valid_bcd(v));
        }
        break;
      }
      case fuzz::Op::Write:
        bus.write(platform::kRtcPort + op.offset, op.bytes(), 0);
        if (one_byte && op.offset == 0) index = op.data[0] & 0x7f;
        if (one_byte && op.offset == 1 && is_clock_register(index)) host_time = false;
        if (one_byte && op.offset == 1 && index == kRegB) {
          uint8_t v = op.data[0];
          if ((v & kBSet) && !(reg_b & kBSet)) v &= static_cast<uint8_t>(~kBUie);  // SET clears UIE
          reg_b = v;
          if (v & kBSet) host_time = false;
        }
        break;
      case fuzz::Op::Clock:
        clock.advance(static_cast<int64_t>(op.value));
        break;
      case fuzz::Op::Extra:
        rtc->tick();
        break;
    }
  }
  // The wall clock starts in 1970-2106 and runs at most a few years here, and what the guest sets
  // is kept within 1900-2199: so a running clock's century reads 19 to 22.
  if (!(reg_b & kBSet)) {
    uint8_t century = 0;
    bus.write(platform::kRtcPort, std::span<const uint8_t>(&kCentury, 1), 0);
    bus.read(platform::kRtcPort + 1, std::span(&century, 1), 0);
    int c = (reg_b & kBBinary) ? century : (century >> 4) * 10 + (century & 0x0f);
    FUZZ_CHECK(c >= 19 && c <= 22);
  }
  return 0;
}
