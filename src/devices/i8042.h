// The PC keyboard controller (Intel 8042 / PS/2 controller), with no keyboard and no AUX (mouse)
// port behind it: enough for Linux's i8042 driver to probe a controller, and for a guest to reset
// the machine through it (IBM PC/AT Technical Reference, keyboard controller; Linux i8042.c).
//
// Range: one device at platform::kI8042DataPort (0x60) with length I8042::kRangeLen (5): offset 0 is
// the data port (0x60), offset 4 the status/command port (0x64), as Firecracker maps it. Offsets 1-3
// (0x61-0x63, system control port B and friends) are not part of the controller: reads return
// all-ones, writes are dropped, both counted in bad_accesses. Every port is 8 bits wide.
//
// No AUX port: 0xa8 (enable AUX) leaves CTR.AUXDIS set, 0xa9 answers 0xff, 0xd4 drops its byte,
// and 0xd3 (loop a byte through the AUX output buffer) returns the byte as keyboard data, without
// the status AUXDATA bit. Linux's check_aux takes that as "no AUX port" at once instead of polling
// 0x64 for half a second. No keyboard: bytes written to the keyboard are dropped.
// No interrupt line: nothing arrives unsolicited, and command replies are polled by guests.
#pragma once

#include <atomic>
#include <cstdint>
#include <mutex>
#include <span>

#include "bus/io_bus.h"
#include "devices/vm_stop_handler.h"

namespace evmm {

struct I8042Stats {
  std::atomic<uint64_t> unknown_commands{0};
  std::atomic<uint64_t> dropped_bytes{0};  // bytes sent to the absent keyboard or AUX device
  std::atomic<uint64_t> resets{0};
  std::atomic<uint64_t> bad_accesses{0};
};

class I8042 final : public BusDevice {
 public:
  static constexpr uint64_t kRangeLen = 5;
  static constexpr uint64_t kDataOffset = 0;
  static constexpr uint64_t kCommandOffset = 4;

  explicit I8042(VmStopHandler& vm) : vm_(vm) {}

  void read(const BusRead& io) override;
  void write(const BusWrite& io) override;

  const I8042Stats& stats() const { return stats_; }

 private:
  // Returns true when the command pulses the CPU reset line.
  bool command(uint8_t cmd);
  bool data_write(uint8_t value);
  void reply(uint8_t value);

  VmStopHandler& vm_;
  std::mutex mu_;
  uint8_t ctr_ = 0x65;      // controller command byte: XLATE, AUXDIS, SYS, KBDINT, as firmware leaves it
  uint8_t outport_ = 0x03;  // output port: reset line high (inactive), A20 enabled
  uint8_t out_ = 0;         // output buffer, read at 0x60
  bool obf_ = false;
  bool last_was_command_ = false;  // status bit 3: the last write went to 0x64
  uint8_t pending_ = 0;            // command waiting for its parameter byte at 0x60, or 0
  I8042Stats stats_;
};

}  // namespace evmm
