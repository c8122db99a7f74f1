// ACPI fixed hardware: the PM1a event and control registers and the PM timer (ACPI 6.0, 4.8.3),
// laid out as QEMU's PIIX4 PM lays them out.
//
// Range: insert at platform::kPm1aEvtPort (0x600) with length AcpiPm::kRangeLen (12):
//   offset 0  PM1a_STS (16 bits)   offset 2  PM1a_EN (16 bits)     -> FADT PM1a_EVT_BLK, length 4
//   offset 4  PM1a_CNT (16 bits)                                   -> FADT PM1a_CNT_BLK, length 2
//   offset 8  PM_TMR (32 bits, 24 significant)                     -> FADT PM_TMR_BLK, length 4
// Byte and word accesses are allowed anywhere inside those registers, as 4.8.3.1 and 4.8.3.2.1
// allow; an access that touches offsets 6-7, or writes the timer, is ignored (reads return
// all-ones), counted in bad_accesses and logged.
//
// The SCI is a level: asserted while (PM1_STS & PM1_EN) has any of TMR, PWRBTN or RTC set.
// SCI_EN always reads 1: there is no SMM, so the machine is always in ACPI mode.
#pragma once

#include <atomic>
#include <cstdint>
#include <functional>
#include <mutex>
#include <span>

#include "bus/io_bus.h"
#include "devices/clock.h"
#include "devices/vm_stop_handler.h"
#include "event/interrupt_line.h"

namespace evmm {

struct AcpiPmStats {
  std::atomic<uint64_t> bad_accesses{0};
  std::atomic<uint64_t> power_offs{0};
  std::atomic<uint64_t> unsupported_sleeps{0};  // SLP_EN with a type that is not S5 and no handler
};

class AcpiPm final : public BusDevice {
 public:
  static constexpr uint64_t kRangeLen = 12;
  static constexpr uint64_t kStsOffset = 0, kEnOffset = 2, kCntOffset = 4, kTmrOffset = 8;

  // PM1_STS bits this device implements (ACPI 6.0, Table 4-16).
  static constexpr uint16_t kTmrSts = 1u << 0;
  static constexpr uint16_t kPwrBtnSts = 1u << 8;
  static constexpr uint16_t kRtcSts = 1u << 10;
  static constexpr uint16_t kWakSts = 1u << 15;
  // PM1_CNT bits (Table 4-18).
  static constexpr uint16_t kSciEn = 1u << 0;
  static constexpr uint16_t kSlpEn = 1u << 13;
  static constexpr int kSlpTypShift = 10;

  static constexpr uint64_t kTimerHz = 3'579'545;

  // sci is the SCI input (platform::kSciIrq), driven as a level. clock must outlive the device;
  // the PM timer counts from 0 at construction.
  AcpiPm(VmStopHandler& vm, InterruptLine& sci, const Clock& clock);

  void read(const BusRead& io) override;
  void write(const BusWrite& io) override;

  // Sets PM1_STS bits from the platform side (power button, RTC alarm, wake); any thread.
  void raise_status(uint16_t bits);
  // Handles SLP_EN with a sleep type other than S5 (S5 always requests PowerOff). Called outside
  // the device lock, on the vCPU thread that wrote PM1_CNT. Without one, such requests are counted,
  // logged and otherwise ignored.
  void set_sleep_handler(std::function<void(uint8_t slp_typ)> handler);
  // PM1_EN as the guest last wrote it: a wake source counts only when its enable bit is set.
  uint16_t enables();
  // Lets a timer thread bring TMR_STS up to date (and the SCI with it, when TMR_EN is set); guest
  // accesses do the same on their own.
  void tick();

  const AcpiPmStats& stats() const { return stats_; }

 private:
  uint64_t timer_ticks() const;
  void update_timer_status();
  void update_sci();

  VmStopHandler& vm_;
  InterruptLine& sci_;
  const Clock& clock_;
  const int64_t epoch_ns_;

  std::mutex mu_;
  uint16_t sts_ = 0;
  uint16_t en_ = 0;
  uint16_t cnt_ = 0;          // the stored bits: SLP_TYP and BM_RLD
  uint64_t last_carry_ = 0;   // timer_ticks() >> 23 when TMR_STS was last brought up to date
  bool sci_level_ = false;
  std::function<void(uint8_t)> sleep_handler_;

  AcpiPmStats stats_;
};

}  // namespace evmm
