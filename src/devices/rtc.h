// Motorola MC146818 real-time clock and CMOS RAM, as on the PC/AT (MC146818A datasheet).
//
// Range: insert at platform::kRtcPort (0x70) with length Rtc::kRangeLen (2). Offset 0 is the index
// port (write-only; bit 7 is the NMI mask, stored and otherwise ignored; reads return 0xff),
// offset 1 the data port of the selected register. Both are 8 bits wide: other widths are ignored
// (reads return all-ones), counted in bad_accesses and logged.
//
// Time is the injected wall clock (UTC) plus an offset the guest sets: writes to the time
// registers, or a SET/clear of register B's SET bit, move the offset so that the guest's time keeps
// running from what it wrote. The clock fields are held in binary and encoded on every access in
// the current BCD/binary and 12/24-hour modes of register B; the weekday is derived from the date.
// The clock spans 1900-2199: a time written outside that (century 00, say) is clamped to its nearest
// end and counted in invalid_time_writes.
// The divider bits of register A are stored, but the time base always runs.
//
// The update cycle (MC146818A, "Update Cycle" and Figure 11): UIP rises 244 us before the cycle
// starts and stays high through the cycle, 1984 us with the 32.768 kHz time base. Here the cycle
// ends on the guest's whole second: UIP reads 1 for the last 2228 us of each second, and at the
// second the time registers show the new time and UF (and AF, when the alarm matches) are set.
// So UIP = 0 guarantees at least 244 us before the registers change, as the datasheet promises.
//
// Register C's flags follow elapsed time: they are brought up to date whenever C is read and by
// next_event_ns(), so a guest that polls C sees UF, AF and PF with no timer at all. They are set
// whatever the enables say; IRQF = (PF & PIE) | (AF & AIE) | (UF & UIE), and the IRQ line
// (platform::kRtcIrq) is a level asserted while IRQF is set, until register C is read.
//
// Interrupts without polling need a timer: next_event_ns() says when the next enabled interrupt
// is due and RtcTimer (devices/rtc_timer.h) sleeps until then. While IRQF is set no periodic or
// update event is reported (nothing changes the line until C is read), and periodic interrupts
// are scheduled at no more than kMaxTimerHz: a faster rate (2048-8192 Hz) still sets PF at its own
// rate for a guest that reads C, but interrupts coalesce into one per 1/kMaxTimerHz, as missed
// periods do on the chip when C is not read in time.
//
// An alarm while AIE is set is an ACPI wake event: it sets RTC_STS in the PM device given to
// set_acpi_pm() (ACPI 6.0 Table 4-16: RTC_STS is set when the RTC asserts its IRQ for an alarm,
// whatever RTC_EN says) and is counted for take_alarms().
#pragma once

#include <atomic>
#include <cstdint>
#include <functional>
#include <mutex>
#include <optional>
#include <span>

#include "base/result.h"
#include "bus/io_bus.h"
#include "devices/clock.h"
#include "event/interrupt_line.h"

namespace evmm {

struct RtcStats {
  std::atomic<uint64_t> bad_accesses{0};         // wrong width, or a write to read-only C or D
  std::atomic<uint64_t> invalid_time_writes{0};  // out-of-range clock fields, clamped
  std::atomic<uint64_t> interrupts{0};           // times the IRQ line was asserted
  std::atomic<uint64_t> alarms{0};               // alarms while AIE was set (wake events)
};

class AcpiPm;

class Rtc final : public BusDevice {
 public:
  static constexpr uint64_t kRangeLen = 2;
  static constexpr size_t kCmosSize = 128;

  // clock must outlive the device.
  Rtc(InterruptLine& irq, const Clock& clock);

  void read(const BusRead& io) override;
  void write(const BusWrite& io) override;

  // Sets a CMOS RAM byte before the guest runs. EINVAL for an index past 0x7f, or one of the
  // clock and status registers (0x00-0x0d, and the century at 0x32).
  Result<void> set_cmos(uint8_t index, uint8_t value);
  // Writes the memory-size bytes firmware and old loaders read, as QEMU's pc_cmos_init does.
  // low_bytes: RAM below 4 GiB, from address 0; high_bytes: RAM above 4 GiB.
  void set_memory_size(uint64_t low_bytes, uint64_t high_bytes);
  // For a timer thread: brings register C's flags up to date and raises the IRQ when enabled.
  void tick();
  // Does what tick() does, then returns when, in host CLOCK_REALTIME ns (the clock's
  // realtime_ns()), the next enabled interrupt or alarm is due; nullopt when none can come
  // without a guest access first (nothing enabled, or IRQF already set). Any thread.
  std::optional<int64_t> next_event_ns();
  // Alarms (AF while AIE) since the last call; any thread.
  uint64_t take_alarms();
  bool alarms_pending();

  // Set before the guest runs. An alarm sets pm's RTC_STS; pm's lock is taken inside the RTC's,
  // so the PM device must never call into the RTC.
  void set_acpi_pm(AcpiPm* pm) { pm_ = pm; }
  // Set before the guest runs. Called, outside the device lock, after each guest access that can
  // move the next event (a data-port write, a read of register C): the timer re-arms there.
  void set_change_hook(std::function<void()> hook) { change_hook_ = std::move(hook); }

  static constexpr int64_t kMaxTimerHz = 1024;

  const RtcStats& stats() const { return stats_; }

 private:
  struct DateTime {
    int64_t year;
    int month, day, hour, minute, second;
    int weekday;  // 1-7, Sunday = 1
  };

  int64_t guest_ns() const;
  DateTime now_fields() const;
  void set_time(const DateTime& t, bool keep_phase);
  bool set_mode() const;
  uint8_t encode(int v) const;
  int decode(uint8_t b) const;
  uint8_t read_data();
  void write_data(uint8_t value);
  uint8_t read_time_field(uint8_t index);
  void write_time_field(uint8_t index, uint8_t value);
  int alarm_want(uint8_t index) const;
  std::optional<int64_t> next_alarm(int64_t after_second) const;
  void alarm_fired();
  void update_flags();
  void update_irq();

  InterruptLine& irq_;
  const Clock& clock_;

  std::mutex mu_;
  uint8_t index_ = 0;
  bool nmi_masked_ = false;
  uint8_t cmos_[kCmosSize] = {};  // NVRAM, alarm bytes and registers A and B; time lives elsewhere
  int64_t offset_ns_ = 0;         // guest time minus host wall time
  DateTime frozen_{};             // what the clock registers hold while register B's SET is on
  int64_t last_check_ns_;         // guest time when register C's flags were last brought up to date
  uint8_t flags_ = 0;             // register C: PF, AF, UF
  bool irq_level_ = false;
  uint64_t alarms_pending_ = 0;

  AcpiPm* pm_ = nullptr;
  std::function<void()> change_hook_;
  RtcStats stats_;
};

}  // namespace evmm
