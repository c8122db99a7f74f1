// 16550A UART, as on a PC's COM1 (National Semiconductor PC16550D datasheet).
//
// Range: insert at platform::kCom1Port (0x3f8) with length Serial::kRangeLen (8); offsets 0-7 are the
// UART registers. Every register is 8 bits wide: any other access width is ignored (reads return
// all-ones), counted in stats().bad_accesses and logged at debug level.
//
// Transmission is instantaneous: THR and the transmitter are always empty again by the time the
// guest looks, and every byte written goes straight to the ByteSink (outside the device lock).
//
// The interrupt line is driven as a level mirroring "an enabled interrupt is pending" (IIR bit 0
// clear). MCR OUT2 is stored but does not gate the line: on a real PC board OUT2 enables the IRQ
// buffer, but QEMU ignores it and guests written against QEMU enable IER without setting OUT2;
// Linux sets OUT2 anyway, so ignoring it costs Linux nothing.
#pragma once

#include <atomic>
#include <cstdint>
#include <deque>
#include <functional>
#include <mutex>
#include <span>

#include "bus/io_bus.h"
#include "devices/byte_sink.h"
#include "event/interrupt_line.h"

namespace evmm {

struct SerialStats {
  std::atomic<uint64_t> bad_accesses{0};   // wrong width, or a write to the read-only LSR/MSR
  std::atomic<uint64_t> overruns{0};       // bytes lost because the RX FIFO was full (loopback only)
  std::atomic<uint64_t> tx_bytes{0};
  std::atomic<uint64_t> rx_bytes{0};       // bytes the guest read from RBR
};

class Serial final : public BusDevice {
 public:
  static constexpr uint64_t kRangeLen = 8;
  // RX capacity in FIFO mode. Larger than the 16550A's 16 bytes so that fewer interrupts are needed;
  // the guest cannot tell, as it drains RBR while LSR.DR is set. In 16450 (non-FIFO) mode it is 1.
  static constexpr size_t kRxFifoSize = 64;

  Serial(InterruptLine& irq, ByteSink out);

  void read(const BusRead& io) override;
  void write(const BusWrite& io) override;

  // Host input, from any thread. Takes as many bytes as the RX FIFO has room for and returns how
  // many it took; the caller keeps the rest and retries after the rx-space callback. Takes nothing
  // until the guest asserts RTS (MCR bit 1), nor in loopback (the input is cut off there), so that
  // a guest's FIFO clear at initialisation cannot drop bytes the host handed over.
  size_t push_input(std::span<const uint8_t> bytes);
  // Called (outside the device lock, on the reading vCPU's thread) when room appears in the RX FIFO
  // after a push_input could not take everything it was offered.
  void set_rx_space_callback(std::function<void()> cb);

  const SerialStats& stats() const { return stats_; }

 private:
  uint8_t read_reg(uint64_t offset, bool* space_appeared);
  // Returns true when *tx holds a byte to hand to the sink; sets *space_appeared when a refused
  // feeder should be told to push again.
  bool write_reg(uint64_t offset, uint8_t value, uint8_t* tx, bool* space_appeared);
  uint8_t iir() const;
  bool accepting_input() const;
  uint8_t msr_lines() const;
  void set_mcr(uint8_t value);
  size_t rx_capacity() const;
  void update_irq();

  InterruptLine& irq_;
  ByteSink out_;

  std::mutex mu_;
  std::deque<uint8_t> rx_;
  uint8_t rbr_ = 0;       // last byte received: what RBR reads when the FIFO is empty
  uint8_t ier_ = 0;
  uint8_t fcr_ = 0;       // write-only on the chip; kept for FIFO enable and trigger level
  uint8_t lcr_ = 0;
  uint8_t mcr_ = 0;
  uint8_t lsr_errors_ = 0;  // OE/PE/FE/BI: cleared by reading LSR
  uint8_t msr_delta_ = 0;   // DCTS/DDSR/TERI/DDCD: cleared by reading MSR
  uint8_t scr_ = 0;
  uint8_t dll_ = 0x0c;      // 9600 baud, a BIOS's usual setting
  uint8_t dlm_ = 0;
  bool thr_ipending_ = false;
  bool rx_blocked_ = false;  // a push_input was refused bytes: call rx_space_cb_ once room appears
  bool irq_level_ = false;
  std::function<void()> rx_space_cb_;

  SerialStats stats_;
};

}  // namespace evmm
