#include "devices/rtc.h"

#include <algorithm>
#include <utility>

#include "base/log.h"
#include "devices/acpi_pm.h"
#include "memory/layout.h"

namespace evmm {
namespace {

// Register indices (MC146818A, Figure 4: address map).
enum Index : uint8_t {
  kSeconds = 0x00, kSecondsAlarm = 0x01, kMinutes = 0x02, kMinutesAlarm = 0x03,
  kHours = 0x04, kHoursAlarm = 0x05, kWeekday = 0x06, kDay = 0x07, kMonth = 0x08, kYear = 0x09,
  kRegA = 0x0a, kRegB = 0x0b, kRegC = 0x0c, kRegD = 0x0d,
  kCentury = platform::kCmosCentury,  // the PC/AT's century byte, also named by the ACPI FADT
};

constexpr uint8_t kAUip = 0x80, kARateMask = 0x0f;
constexpr uint8_t kBSet = 0x80, kBPie = 0x40, kBAie = 0x20, kBUie = 0x10, kBBinary = 0x04, kB24Hour = 0x02;
constexpr uint8_t kCIrqf = 0x80, kCFlags = 0x70;  // PF 0x40, AF 0x20, UF 0x10: same bits as PIE, AIE, UIE
constexpr uint8_t kCPf = 0x40, kCAf = 0x20, kCUf = 0x10;
constexpr uint8_t kDVrt = 0x80;
constexpr uint8_t kHourPm = 0x80;

// UIP rises 244 us before the update cycle, which lasts 1984 us with the 32.768 kHz time base
// (MC146818A, Table 4 and Figure 11); the cycle ends when the seconds roll over.
constexpr int64_t kUipWindowNs = 244'000 + 1'984'000;
constexpr int64_t kSecsPerDay = 86'400;
// 1900-01-01 00:00:00 and 2199-12-31 23:59:59 UTC, in seconds since 1970 (Python's calendar.timegm).
constexpr int64_t kMinGuestSecs = -2'208'988'800;
constexpr int64_t kMaxGuestSecs = 7'258'118'399;

int64_t floor_div(int64_t a, int64_t b) { return a / b - ((a % b != 0) && ((a < 0) != (b < 0))); }
int64_t floor_mod(int64_t a, int64_t b) { return a - floor_div(a, b) * b; }

// Days since 1970-01-01 of a proleptic Gregorian date (H. Hinnant, "chrono-compatible
// low-level date algorithms").
int64_t days_from_civil(int64_t y, int m, int d) {
  y -= m <= 2;
  int64_t era = floor_div(y, 400);
  int64_t yoe = y - era * 400;
  int64_t doy = (153 * (m + (m > 2 ? -3 : 9)) + 2) / 5 + d - 1;
  int64_t doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
  return era * 146097 + doe - 719468;
}

void civil_from_days(int64_t z, int64_t* y, int* m, int* d) {
  z += 719468;
  int64_t era = floor_div(z, 146097);
  int64_t doe = z - era * 146097;
  int64_t yoe = (doe - doe / 1460 + doe / 36524 - doe / 146096) / 365;
  int64_t doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
  int64_t mp = (5 * doy + 2) / 153;
  *d = static_cast<int>(doy - (153 * mp + 2) / 5 + 1);
  *m = static_cast<int>(mp < 10 ? mp + 3 : mp - 9);
  *y = yoe + era * 400 + (*m <= 2);
}

// The periodic-interrupt rate for register A's RS bits with the 32.768 kHz time base (Table 5).
int64_t periodic_hz(uint8_t rs) {
  if (rs == 0) return 0;
  if (rs <= 2) return 256 >> (rs - 1);
  return 65536 >> rs;
}

// How many periods of hz have started by guest time ns.
int64_t periods(int64_t ns, int64_t hz) {
  return floor_div(ns, kNsPerSec) * hz + floor_mod(ns, kNsPerSec) * hz / kNsPerSec;
}

// When the first period of hz after guest time ns starts: the inverse of periods().
int64_t next_period(int64_t ns, int64_t hz) {
  int64_t n = periods(ns, hz) + 1;
  return floor_div(n, hz) * kNsPerSec + (floor_mod(n, hz) * kNsPerSec + hz - 1) / hz;
}

}  // namespace

Rtc::Rtc(InterruptLine& irq, const Clock& clock) : irq_(irq), clock_(clock) {
  cmos_[kRegA] = 0x26;  // 32.768 kHz time base, 1024 Hz periodic rate: what a BIOS programs
  cmos_[kRegB] = kB24Hour;
  last_check_ns_ = guest_ns();
}

int64_t Rtc::guest_ns() const { return clock_.realtime_ns() + offset_ns_; }

bool Rtc::set_mode() const { return cmos_[kRegB] & kBSet; }

Rtc::DateTime Rtc::now_fields() const {
  if (set_mode()) return frozen_;
  int64_t secs = floor_div(guest_ns(), kNsPerSec);
  int64_t days = floor_div(secs, kSecsPerDay), tod = floor_mod(secs, kSecsPerDay);
  DateTime t{};
  civil_from_days(days, &t.year, &t.month, &t.day);
  t.hour = static_cast<int>(tod / 3600);
  t.minute = static_cast<int>(tod / 60 % 60);
  t.second = static_cast<int>(tod % 60);
  t.weekday = static_cast<int>(floor_mod(days + 4, 7)) + 1;  // 1970-01-01 was a Thursday
  return t;
}

void Rtc::set_time(const DateTime& t, bool keep_phase) {
  int64_t secs = days_from_civil(t.year, t.month, t.day) * kSecsPerDay + t.hour * 3600 + t.minute * 60 + t.second;
  // Guest time is int64 nanoseconds since 1970, which end in 1677 and 2262: a century of 00 or 99
  // would overflow it. The clock spans 1900-2199 and takes a time outside at the nearest end.
  if (secs < kMinGuestSecs || secs > kMaxGuestSecs) {
    stats_.invalid_time_writes.fetch_add(1, std::memory_order_relaxed);
    LOG_DEBUG("rtc: year {} is outside 1900-2199; clamped", t.year);
    secs = std::clamp(secs, kMinGuestSecs, kMaxGuestSecs);
  }
  int64_t phase = keep_phase ? floor_mod(guest_ns(), kNsPerSec) : 0;
  offset_ns_ = secs * kNsPerSec + phase - clock_.realtime_ns();
  last_check_ns_ = guest_ns();  // a jump in time is not an update, an alarm or a period
}

uint8_t Rtc::encode(int v) const {
  if (cmos_[kRegB] & kBBinary) return static_cast<uint8_t>(v);
  return static_cast<uint8_t>(((v / 10) % 10) << 4 | (v % 10));
}

int Rtc::decode(uint8_t b) const {
  if (cmos_[kRegB] & kBBinary) return b;
  return (b >> 4) * 10 + (b & 0x0f);
}

uint8_t Rtc::read_time_field(uint8_t index) {
  DateTime t = now_fields();
  switch (index) {
    case kSeconds: return encode(t.second);
    case kMinutes: return encode(t.minute);
    case kHours:
      if (cmos_[kRegB] & kB24Hour) return encode(t.hour);
      // 12-hour mode: 12, 1, ..., 11 with bit 7 set for PM (MC146818A, Table 3).
      return static_cast<uint8_t>(encode(t.hour % 12 == 0 ? 12 : t.hour % 12) | (t.hour >= 12 ? kHourPm : 0));
    case kWeekday: return encode(t.weekday);
    case kDay: return encode(t.day);
    case kMonth: return encode(t.month);
    case kYear: return encode(static_cast<int>(floor_mod(t.year, 100)));
    default: return encode(static_cast<int>(floor_div(t.year, 100)));  // kCentury
  }
}

void Rtc::write_time_field(uint8_t index, uint8_t value) {
  DateTime t = now_fields();
  auto field = [&](int v, int lo, int hi) {
    if (v >= lo && v <= hi) return v;
    stats_.invalid_time_writes.fetch_add(1, std::memory_order_relaxed);
    LOG_DEBUG("rtc: clock register {:#x} written out of range ({:#x}); clamped", index, value);
    return std::clamp(v, lo, hi);
  };
  switch (index) {
    case kSeconds: t.second = field(decode(value), 0, 59); break;
    case kMinutes: t.minute = field(decode(value), 0, 59); break;
    case kHours:
      if (cmos_[kRegB] & kB24Hour) {
        t.hour = field(decode(value), 0, 23);
      } else {
        int h = field(decode(value & ~kHourPm), 1, 12) % 12;
        t.hour = h + ((value & kHourPm) ? 12 : 0);
      }
      break;
    case kWeekday: t.weekday = field(decode(value), 1, 7); break;
    case kDay: t.day = field(decode(value), 1, 31); break;
    case kMonth: t.month = field(decode(value), 1, 12); break;
    case kYear: t.year = floor_div(t.year, 100) * 100 + field(decode(value), 0, 99); break;
    default: t.year = int64_t{field(decode(value), 0, 99)} * 100 + floor_mod(t.year, 100); break;
  }
  // With SET on, the registers hold what the guest writes until SET is cleared. A running clock
  // keeps running from the new value; the weekday always follows the date once running.
  if (set_mode()) {
    frozen_ = t;
  } else if (index != kWeekday) {
    set_time(t, /*keep_phase=*/true);
  }
}

// The value an alarm byte asks for, in binary and 24-hour terms; -1 for "don't care": any byte of
// 0xc0-0xff matches every value (MC146818A, "Alarm" section).
int Rtc::alarm_want(uint8_t index) const {
  uint8_t alarm = cmos_[index];
  if ((alarm & 0xc0) == 0xc0) return -1;
  if (index != kHoursAlarm) return decode(alarm);
  int want = decode(alarm & ~kHourPm);
  if (!(cmos_[kRegB] & kB24Hour)) want = want % 12 + ((alarm & kHourPm) ? 12 : 0);
  return want;
}

// The first guest second after `after` whose time of day matches the alarm bytes. One day holds
// every time of day, so nullopt means they never match (an hour of 25, say). Walks minutes, not
// seconds: at most 1441 steps.
std::optional<int64_t> Rtc::next_alarm(int64_t after) const {
  int want_s = alarm_want(kSecondsAlarm), want_m = alarm_want(kMinutesAlarm), want_h = alarm_want(kHoursAlarm);
  int64_t first = after + 1;
  for (int64_t m = floor_div(first, 60) * 60; m < first + kSecsPerDay; m += 60) {
    int64_t tod = floor_mod(m, kSecsPerDay);
    if ((want_h >= 0 && want_h != tod / 3600) || (want_m >= 0 && want_m != tod / 60 % 60)) continue;
    int64_t lo = std::max(m, first);
    if (want_s < 0) return lo;
    if (want_s < 60 && m + want_s >= lo) return m + want_s;
  }
  return std::nullopt;
}

void Rtc::alarm_fired() {
  stats_.alarms.fetch_add(1, std::memory_order_relaxed);
  ++alarms_pending_;
  if (pm_) pm_->raise_status(AcpiPm::kRtcSts);
}

void Rtc::update_flags() {
  int64_t now = guest_ns(), prev = last_check_ns_;
  last_check_ns_ = now;
  if (now <= prev) return;
  if (int64_t hz = periodic_hz(cmos_[kRegA] & kARateMask); hz && periods(now, hz) != periods(prev, hz))
    flags_ |= kCPf;
  if (set_mode()) return;  // SET stops the update cycle: no UF, no AF
  int64_t s_prev = floor_div(prev, kNsPerSec), s_now = floor_div(now, kNsPerSec);
  if (s_now == s_prev) return;
  flags_ |= kCUf;
  // Each update cycle compares the new time with the alarm; a set AF stays set until C is read.
  if (flags_ & kCAf) return;
  if (auto s = next_alarm(s_prev); s && *s <= s_now) {
    flags_ |= kCAf;
    if (cmos_[kRegB] & kBAie) alarm_fired();
  }
}

void Rtc::update_irq() {
  bool level = (flags_ & cmos_[kRegB] & kCFlags) != 0;
  if (level == irq_level_) return;
  irq_level_ = level;
  if (level) stats_.interrupts.fetch_add(1, std::memory_order_relaxed);
  irq_.set_level(level);
}

uint8_t Rtc::read_data() {
  switch (index_) {
    case kSeconds: case kMinutes: case kHours: case kWeekday: case kDay: case kMonth: case kYear: case kCentury:
      return read_time_field(index_);
    case kRegA: {
      bool uip = !set_mode() && floor_mod(guest_ns(), kNsPerSec) >= kNsPerSec - kUipWindowNs;
      return static_cast<uint8_t>(cmos_[kRegA] | (uip ? kAUip : 0));
    }
    case kRegC: {
      // Reading C reports and clears every flag, and with them the interrupt (MC146818A, Register C).
      update_flags();
      uint8_t v = flags_;
      if (flags_ & cmos_[kRegB] & kCFlags) v |= kCIrqf;
      flags_ = 0;
      update_irq();
      return v;
    }
    case kRegD:
      return kDVrt;  // the battery is always good
    default:
      return cmos_[index_];
  }
}

void Rtc::write_data(uint8_t value) {
  switch (index_) {
    case kSeconds: case kMinutes: case kHours: case kWeekday: case kDay: case kMonth: case kYear: case kCentury:
      write_time_field(index_, value);
      return;
    case kSecondsAlarm: case kMinutesAlarm: case kHoursAlarm:
      update_flags();  // the elapsed interval is judged against the old alarm
      cmos_[index_] = value;
      return;
    case kRegA:
      update_flags();
      cmos_[kRegA] = value & static_cast<uint8_t>(~kAUip);  // UIP is read-only
      return;
    case kRegB: {
      update_flags();
      bool was_set = set_mode();
      if ((value & kBSet) && !was_set) {
        frozen_ = now_fields();
        value &= static_cast<uint8_t>(~kBUie);  // SET clears UIE, as QEMU does
      }
      cmos_[kRegB] = value;
      // Leaving SET starts the clock from what the guest wrote, at the start of that second.
      if (was_set && !(value & kBSet)) set_time(frozen_, /*keep_phase=*/false);
      return;
    }
    case kRegC:
    case kRegD:
      stats_.bad_accesses.fetch_add(1, std::memory_order_relaxed);
      LOG_DEBUG("rtc: write {:#x} to read-only register {:#x} ignored", value, index_);
      return;
    default:
      cmos_[index_] = value;
  }
}

void Rtc::read(const BusRead& io) {
  if (io.data.size() != 1 || io.offset >= kRangeLen) {
    std::fill(io.data.begin(), io.data.end(), 0xff);
    stats_.bad_accesses.fetch_add(1, std::memory_order_relaxed);
    LOG_DEBUG("rtc: {}-byte read at offset {} ignored", io.data.size(), io.offset);
    return;
  }
  if (io.offset == 0) {
    io.data[0] = 0xff;  // the index port is write-only on the PC
    return;
  }
  bool read_c;
  {
    std::lock_guard lock(mu_);
    io.data[0] = read_data();
    read_c = index_ == kRegC;
  }
  if (read_c && change_hook_) change_hook_();  // clearing IRQF lets periodic and update events count again
}

void Rtc::write(const BusWrite& io) {
  if (io.data.size() != 1 || io.offset >= kRangeLen) {
    stats_.bad_accesses.fetch_add(1, std::memory_order_relaxed);
    LOG_DEBUG("rtc: {}-byte write at offset {} ignored", io.data.size(), io.offset);
    return;
  }
  {
    std::lock_guard lock(mu_);
    if (io.offset == 0) {
      index_ = io.data[0] & 0x7f;
      nmi_masked_ = io.data[0] & 0x80;  // the PC's NMI mask shares the index port; NMIs are not modelled
      return;
    }
    write_data(io.data[0]);
    update_irq();
  }
  if (change_hook_) change_hook_();
}

Result<void> Rtc::set_cmos(uint8_t index, uint8_t value) {
  if (index >= kCmosSize || index <= kRegD || index == kCentury)
    return make_error(EINVAL, "rtc: CMOS index {:#x} is not free NVRAM", index);
  std::lock_guard lock(mu_);
  cmos_[index] = value;
  return {};
}

void Rtc::set_memory_size(uint64_t low_bytes, uint64_t high_bytes) {
  constexpr uint64_t KiB = 1024, MiB = 1024 * KiB;
  auto put16 = [&](uint8_t at, uint64_t v) {
    v = std::min<uint64_t>(v, 0xffff);
    cmos_[at] = static_cast<uint8_t>(v);
    cmos_[at + 1] = static_cast<uint8_t>(v >> 8);
  };
  std::lock_guard lock(mu_);
  put16(0x15, std::min<uint64_t>(low_bytes / KiB, 640));                    // base memory, KiB
  uint64_t ext = low_bytes > MiB ? (low_bytes - MiB) / KiB : 0;             // KiB above 1 MiB
  put16(0x17, ext);
  put16(0x30, ext);
  put16(0x34, low_bytes > 16 * MiB ? (low_bytes - 16 * MiB) / (64 * KiB) : 0);  // 64 KiB units above 16 MiB
  uint64_t high = std::min<uint64_t>(high_bytes / (64 * KiB), 0xffffff);    // 64 KiB units above 4 GiB
  cmos_[0x5b] = static_cast<uint8_t>(high);
  cmos_[0x5c] = static_cast<uint8_t>(high >> 8);
  cmos_[0x5d] = static_cast<uint8_t>(high >> 16);
}

void Rtc::tick() {
  std::lock_guard lock(mu_);
  update_flags();
  update_irq();
}

std::optional<int64_t> Rtc::next_event_ns() {
  std::lock_guard lock(mu_);
  update_flags();
  update_irq();
  int64_t now = guest_ns();
  uint8_t b = cmos_[kRegB];
  std::optional<int64_t> next;
  auto consider = [&](int64_t at) { next = next ? std::min(*next, at) : at; };
  // With IRQF set, periods and updates change nothing the guest can see until it reads C.
  if (!irq_level_) {
    int64_t hz = std::min(periodic_hz(cmos_[kRegA] & kARateMask), kMaxTimerHz);
    if ((b & kBPie) && hz) consider(next_period(now, hz));
    if ((b & kBUie) && !set_mode()) consider((floor_div(now, kNsPerSec) + 1) * kNsPerSec);
  }
  // An alarm is still a wake event while the line is up for another reason.
  if ((b & kBAie) && !(flags_ & kCAf) && !set_mode())
    if (auto s = next_alarm(floor_div(now, kNsPerSec))) consider(*s * kNsPerSec);
  if (next) *next -= offset_ns_;  // guest time to host time
  return next;
}

uint64_t Rtc::take_alarms() {
  std::lock_guard lock(mu_);
  return std::exchange(alarms_pending_, 0);
}

bool Rtc::alarms_pending() {
  std::lock_guard lock(mu_);
  return alarms_pending_ != 0;
}

}  // namespace evmm
