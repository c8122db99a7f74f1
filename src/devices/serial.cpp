#include "devices/serial.h"

#include <algorithm>

#include "base/log.h"

namespace evmm {
namespace {

// Register offsets; with LCR.DLAB set, offsets 0 and 1 are the divisor latch (PC16550D, Table II).
enum Reg : uint64_t { kRbrThr = 0, kIer = 1, kIirFcr = 2, kLcr = 3, kMcr = 4, kLsr = 5, kMsr = 6, kScr = 7 };

constexpr uint8_t kIerRda = 0x01, kIerThre = 0x02, kIerRls = 0x04, kIerMsi = 0x08;
constexpr uint8_t kIirNone = 0x01, kIirMsi = 0x00, kIirThre = 0x02, kIirRda = 0x04, kIirRls = 0x06,
                  kIirTimeout = 0x0c, kIirFifoEnabled = 0xc0;
constexpr uint8_t kFcrEnable = 0x01, kFcrClearRx = 0x02, kFcrDma = 0x08, kFcrTrigger = 0xc0;
constexpr uint8_t kLcrDlab = 0x80;
constexpr uint8_t kMcrDtr = 0x01, kMcrRts = 0x02, kMcrOut1 = 0x04, kMcrOut2 = 0x08, kMcrLoop = 0x10;
constexpr uint8_t kLsrDr = 0x01, kLsrOe = 0x02, kLsrErrors = 0x1e, kLsrThre = 0x20, kLsrTemt = 0x40;
constexpr uint8_t kMsrDcts = 0x01, kMsrDdsr = 0x02, kMsrTeri = 0x04, kMsrDdcd = 0x08;
constexpr uint8_t kMsrCts = 0x10, kMsrDsr = 0x20, kMsrRi = 0x40, kMsrDcd = 0x80;

// RX trigger levels selected by FCR bits 7:6 (PC16550D, FIFO Control Register).
constexpr size_t kTriggerLevels[4] = {1, 4, 8, 14};

}  // namespace

Serial::Serial(InterruptLine& irq, ByteSink out) : irq_(irq), out_(std::move(out)) {}

void Serial::set_rx_space_callback(std::function<void()> cb) {
  std::lock_guard lock(mu_);
  rx_space_cb_ = std::move(cb);
}

size_t Serial::rx_capacity() const { return (fcr_ & kFcrEnable) ? kRxFifoSize : 1; }

size_t Serial::push_input(std::span<const uint8_t> bytes) {
  std::lock_guard lock(mu_);
  size_t room = accepting_input() ? rx_capacity() - std::min(rx_.size(), rx_capacity()) : 0;
  size_t n = std::min(room, bytes.size());
  rx_.insert(rx_.end(), bytes.begin(), bytes.begin() + static_cast<ptrdiff_t>(n));
  if (n < bytes.size()) rx_blocked_ = true;
  update_irq();
  return n;
}

// Host input is flow-controlled by RTS, as a peer honouring RTS/CTS would be: nothing arrives
// before the guest asks for it, so a driver's FIFO clear during initialisation (FCR before MCR, as
// Linux and evmm's runtime do it) never throws away bytes the host already handed over. In loopback
// the input is disconnected from the receiver altogether (PC16550D, MCR bit 4).
bool Serial::accepting_input() const { return (mcr_ & kMcrRts) && !(mcr_ & kMcrLoop); }

uint8_t Serial::msr_lines() const {
  // In loopback the modem inputs are wired to the MCR outputs (PC16550D, MCR bit 4); otherwise a
  // peer is always there and ready: CTS, DSR and DCD asserted.
  if (!(mcr_ & kMcrLoop)) return kMsrCts | kMsrDsr | kMsrDcd;
  uint8_t m = 0;
  if (mcr_ & kMcrRts) m |= kMsrCts;
  if (mcr_ & kMcrDtr) m |= kMsrDsr;
  if (mcr_ & kMcrOut1) m |= kMsrRi;
  if (mcr_ & kMcrOut2) m |= kMsrDcd;
  return m;
}

void Serial::set_mcr(uint8_t value) {
  uint8_t before = msr_lines();
  mcr_ = value & 0x1f;  // bits 5-7 are always 0 on the 16550A
  uint8_t after = msr_lines();
  uint8_t changed = before ^ after;
  if (changed & kMsrCts) msr_delta_ |= kMsrDcts;
  if (changed & kMsrDsr) msr_delta_ |= kMsrDdsr;
  if (changed & kMsrDcd) msr_delta_ |= kMsrDdcd;
  // TERI reports the trailing edge of RI only (PC16550D, MSR bit 2).
  if ((before & kMsrRi) && !(after & kMsrRi)) msr_delta_ |= kMsrTeri;
}

uint8_t Serial::iir() const {
  uint8_t fifo = (fcr_ & kFcrEnable) ? kIirFifoEnabled : 0;
  // Priority order: line status, received data, THR empty, modem status (PC16550D, Table IV).
  if ((ier_ & kIerRls) && (lsr_errors_ & kLsrErrors)) return fifo | kIirRls;
  if ((ier_ & kIerRda) && !rx_.empty()) {
    // Data below the trigger level would raise the character timeout on a real FIFO; report that.
    bool below = fifo && rx_.size() < kTriggerLevels[(fcr_ & kFcrTrigger) >> 6];
    return fifo | (below ? kIirTimeout : kIirRda);
  }
  if ((ier_ & kIerThre) && thr_ipending_) return fifo | kIirThre;
  if ((ier_ & kIerMsi) && msr_delta_) return fifo | kIirMsi;
  return fifo | kIirNone;
}

void Serial::update_irq() {
  bool level = !(iir() & kIirNone);
  if (level == irq_level_) return;
  irq_level_ = level;
  irq_.set_level(level);
}

uint8_t Serial::read_reg(uint64_t offset, bool* space_appeared) {
  bool dlab = lcr_ & kLcrDlab;
  switch (offset) {
    case kRbrThr:
      if (dlab) return dll_;
      if (!rx_.empty()) {
        rbr_ = rx_.front();
        rx_.pop_front();
        stats_.rx_bytes.fetch_add(1, std::memory_order_relaxed);
        if (rx_blocked_ && accepting_input()) *space_appeared = true;
      }
      return rbr_;
    case kIer:
      return dlab ? dlm_ : ier_;
    case kIirFcr: {
      uint8_t v = iir();
      // Reading IIR while it reports THRE clears that source (PC16550D, Table IV).
      if ((v & 0x0f) == kIirThre) thr_ipending_ = false;
      return v;
    }
    case kLcr:
      return lcr_;
    case kMcr:
      return mcr_;
    case kLsr: {
      uint8_t v = lsr_errors_ | kLsrThre | kLsrTemt | (rx_.empty() ? 0 : kLsrDr);
      lsr_errors_ = 0;  // OE, PE, FE and BI clear when LSR is read
      return v;
    }
    case kMsr: {
      uint8_t v = msr_lines() | msr_delta_;
      msr_delta_ = 0;
      return v;
    }
    default:
      return scr_;
  }
}

bool Serial::write_reg(uint64_t offset, uint8_t value, uint8_t* tx, bool* space_appeared) {
  bool dlab = lcr_ & kLcrDlab;
  switch (offset) {
    case kRbrThr:
      if (dlab) {
        dll_ = value;
        return false;
      }
      // The byte leaves at once, so THR is empty again and THRE is pending anew.
      thr_ipending_ = true;
      stats_.tx_bytes.fetch_add(1, std::memory_order_relaxed);
      if (!(mcr_ & kMcrLoop)) {
        *tx = value;
        return true;
      }
      if (rx_.size() < rx_capacity()) {
        rx_.push_back(value);
      } else {
        lsr_errors_ |= kLsrOe;
        stats_.overruns.fetch_add(1, std::memory_order_relaxed);
        LOG_DEBUG("serial: RX overrun in loopback");
      }
      return false;
    case kIer: {
      if (dlab) {
        dlm_ = value;
        return false;
      }
      uint8_t changed = (ier_ ^ value) & 0x0f;
      ier_ = value & 0x0f;
      // Enabling ETBEI while THR is empty raises THRE (PC16550D, IER bit 1); THR is always empty.
      if (changed & kIerThre) thr_ipending_ = ier_ & kIerThre;
      return false;
    }
    case kIirFcr:
      // Changing the FIFO enable bit resets both FIFOs (PC16550D, FCR bit 0).
      if ((value ^ fcr_) & kFcrEnable) value |= kFcrClearRx;
      if (value & kFcrClearRx) rx_.clear();
      // Other FCR bits are programmed only together with FCR bit 0 set.
      fcr_ = (value & kFcrEnable) ? (value & (kFcrEnable | kFcrDma | kFcrTrigger)) : 0;
      if (rx_blocked_ && accepting_input() && rx_.size() < rx_capacity()) *space_appeared = true;
      return false;
    case kLcr:
      lcr_ = value;
      return false;
    case kMcr: {
      bool was_accepting = accepting_input();
      set_mcr(value);
      // Raising RTS or leaving loopback opens the input: a feeder that was refused may push again.
      if (!was_accepting && accepting_input() && rx_blocked_) *space_appeared = true;
      return false;
    }
    case kLsr:
    case kMsr:
      stats_.bad_accesses.fetch_add(1, std::memory_order_relaxed);
      LOG_DEBUG("serial: write {:#x} to read-only register {} ignored", value, offset);
      return false;
    default:
      scr_ = value;
      return false;
  }
}

void Serial::read(const BusRead& io) {
  if (io.data.size() != 1 || io.offset >= kRangeLen) {
    std::fill(io.data.begin(), io.data.end(), 0xff);
    stats_.bad_accesses.fetch_add(1, std::memory_order_relaxed);
    LOG_DEBUG("serial: {}-byte read at offset {} ignored", io.data.size(), io.offset);
    return;
  }
  bool space = false;
  std::function<void()> cb;
  {
    std::lock_guard lock(mu_);
    io.data[0] = read_reg(io.offset, &space);
    update_irq();
    if (space) {
      rx_blocked_ = false;
      cb = rx_space_cb_;
    }
  }
  if (cb) cb();
}

void Serial::write(const BusWrite& io) {
  if (io.data.size() != 1 || io.offset >= kRangeLen) {
    stats_.bad_accesses.fetch_add(1, std::memory_order_relaxed);
    LOG_DEBUG("serial: {}-byte write at offset {} ignored", io.data.size(), io.offset);
    return;
  }
  bool space = false, send = false;
  uint8_t tx = 0;
  std::function<void()> cb;
  {
    std::lock_guard lock(mu_);
    send = write_reg(io.offset, io.data[0], &tx, &space);
    update_irq();
    if (space) {
      rx_blocked_ = false;
      cb = rx_space_cb_;
    }
  }
  if (send && out_) out_(std::span<const uint8_t>(&tx, 1));
  if (cb) cb();
}

}  // namespace evmm
