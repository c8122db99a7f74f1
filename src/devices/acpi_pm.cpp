#include "devices/acpi_pm.h"

#include <algorithm>

#include "base/log.h"
#include "memory/layout.h"

namespace evmm {
namespace {

// The status bits that have an enable bit at the same position in PM1_EN (ACPI 6.0, Table 4-17).
constexpr uint16_t kEnMask = AcpiPm::kTmrSts | AcpiPm::kPwrBtnSts | AcpiPm::kRtcSts;
constexpr uint16_t kStsMask = kEnMask | AcpiPm::kWakSts;
constexpr uint16_t kBmRld = 1u << 1;
constexpr uint16_t kSlpTypMask = 7u << AcpiPm::kSlpTypShift;
constexpr uint16_t kCntStored = kBmRld | kSlpTypMask;

// Offsets 6-7 sit between PM1a_CNT and PM_TMR and belong to no register.
constexpr uint64_t kGapStart = 6, kGapEnd = 8;

bool touches(uint64_t off, uint64_t len, uint64_t start, uint64_t end) { return off < end && off + len > start; }

}  // namespace

AcpiPm::AcpiPm(VmStopHandler& vm, InterruptLine& sci, const Clock& clock)
    : vm_(vm), sci_(sci), clock_(clock), epoch_ns_(clock.monotonic_ns()) {}

uint64_t AcpiPm::timer_ticks() const {
  uint64_t ns = static_cast<uint64_t>(std::max<int64_t>(0, clock_.monotonic_ns() - epoch_ns_));
  // Split into seconds and the rest so the product cannot overflow 64 bits.
  uint64_t s = ns / kNsPerSec, rem = ns % kNsPerSec;
  return s * kTimerHz + rem * kTimerHz / kNsPerSec;
}

void AcpiPm::update_timer_status() {
  // TMR_STS is set whenever the counter's top bit (bit 23) changes (ACPI 6.0, Table 4-16).
  uint64_t carry = timer_ticks() >> 23;
  if (carry != last_carry_) {
    last_carry_ = carry;
    sts_ |= kTmrSts;
  }
}

void AcpiPm::update_sci() {
  bool level = (sts_ & en_ & kEnMask) != 0;
  if (level == sci_level_) return;
  sci_level_ = level;
  sci_.set_level(level);
}

void AcpiPm::raise_status(uint16_t bits) {
  std::lock_guard lock(mu_);
  sts_ |= bits & kStsMask;
  update_sci();
}

void AcpiPm::set_sleep_handler(std::function<void(uint8_t)> handler) {
  std::lock_guard lock(mu_);
  sleep_handler_ = std::move(handler);
}

void AcpiPm::tick() {
  std::lock_guard lock(mu_);
  update_timer_status();
  update_sci();
}

void AcpiPm::read(const BusRead& io) {
  uint64_t len = io.data.size();
  if ((len != 1 && len != 2 && len != 4) || io.offset + len > kRangeLen || touches(io.offset, len, kGapStart, kGapEnd)) {
    std::fill(io.data.begin(), io.data.end(), 0xff);
    stats_.bad_accesses.fetch_add(1, std::memory_order_relaxed);
    LOG_DEBUG("acpi-pm: {}-byte read at offset {} ignored", len, io.offset);
    return;
  }
  uint8_t image[kRangeLen] = {};
  {
    std::lock_guard lock(mu_);
    update_timer_status();
    update_sci();
    uint16_t cnt = cnt_ | kSciEn;  // SLP_EN is write-only and reads 0
    uint32_t tmr = static_cast<uint32_t>(timer_ticks() & 0xffffff);  // 24 bits: FADT has no TMR_VAL_EXT
    image[0] = static_cast<uint8_t>(sts_);
    image[1] = static_cast<uint8_t>(sts_ >> 8);
    image[2] = static_cast<uint8_t>(en_);
    image[3] = static_cast<uint8_t>(en_ >> 8);
    image[4] = static_cast<uint8_t>(cnt);
    image[5] = static_cast<uint8_t>(cnt >> 8);
    for (int i = 0; i < 4; ++i) image[kTmrOffset + i] = static_cast<uint8_t>(tmr >> (8 * i));
  }
  std::copy_n(image + io.offset, len, io.data.begin());
}

void AcpiPm::write(const BusWrite& io) {
  uint64_t len = io.data.size();
  if ((len != 1 && len != 2 && len != 4) || io.offset + len > kRangeLen || touches(io.offset, len, kGapStart, kRangeLen)) {
    stats_.bad_accesses.fetch_add(1, std::memory_order_relaxed);
    LOG_DEBUG("acpi-pm: {}-byte write at offset {} ignored", len, io.offset);
    return;
  }
  // Spread the access over the register image: value and byte mask per 16-bit register.
  uint8_t value[kGapStart] = {}, mask[kGapStart] = {};
  for (uint64_t i = 0; i < len; ++i) {
    value[io.offset + i] = io.data[i];
    mask[io.offset + i] = 0xff;
  }
  auto word = [](const uint8_t* p) { return static_cast<uint16_t>(p[0] | (p[1] << 8)); };
  uint16_t sts_v = word(value + kStsOffset) & word(mask + kStsOffset);
  uint16_t en_v = word(value + kEnOffset), en_m = word(mask + kEnOffset);
  uint16_t cnt_v = word(value + kCntOffset), cnt_m = word(mask + kCntOffset);

  bool sleep = false;
  uint8_t slp_typ = 0;
  std::function<void(uint8_t)> handler;
  {
    std::lock_guard lock(mu_);
    update_timer_status();
    // Status bits are cleared by writing 1 to them (ACPI 6.0, 4.8.3.1).
    sts_ &= static_cast<uint16_t>(~sts_v);
    en_ = static_cast<uint16_t>((en_ & ~en_m) | (en_v & en_m & kEnMask));
    cnt_ = static_cast<uint16_t>((cnt_ & ~cnt_m) | (cnt_v & cnt_m & kCntStored));
    // Writing SLP_EN enters the sleep state given by SLP_TYP (ACPI 6.0, 4.8.3.2.1).
    if (cnt_v & cnt_m & kSlpEn) {
      sleep = true;
      slp_typ = static_cast<uint8_t>((cnt_ & kSlpTypMask) >> kSlpTypShift);
      handler = sleep_handler_;
    }
    update_sci();
  }
  if (!sleep) return;
  if (slp_typ == platform::kSlpTypS5) {
    stats_.power_offs.fetch_add(1, std::memory_order_relaxed);
    LOG_DEBUG("acpi-pm: guest entered S5");
    vm_.request_stop(StopReason::PowerOff, 0);
  } else if (handler) {
    handler(slp_typ);
  } else {
    stats_.unsupported_sleeps.fetch_add(1, std::memory_order_relaxed);
    LOG_DEBUG("acpi-pm: unsupported sleep type {}", slp_typ);
  }
}

uint16_t AcpiPm::enables() {
  std::lock_guard lock(mu_);
  return en_;
}

}  // namespace evmm
