#include "devices/i8042.h"

#include <algorithm>
#include <utility>

#include "base/log.h"

namespace evmm {
namespace {

// Status register bits (Linux i8042.h names).
constexpr uint8_t kStrObf = 0x01, kStrSys = 0x04, kStrCmdData = 0x08, kStrKeyLock = 0x10;
// Controller command byte bits.
constexpr uint8_t kCtrKbdDis = 0x10, kCtrAuxDis = 0x20;
// Output port bits: bit 0 is the CPU reset line (active low), bit 1 the A20 gate.
constexpr uint8_t kOutReset = 0x01, kOutA20 = 0x02;

enum Command : uint8_t {
  kReadCtr = 0x20,
  kWriteCtr = 0x60,
  kAuxDisable = 0xa7,
  kAuxEnable = 0xa8,
  kAuxTest = 0xa9,
  kSelfTest = 0xaa,
  kKbdTest = 0xab,
  kKbdDisable = 0xad,
  kKbdEnable = 0xae,
  kReadOutPort = 0xd0,
  kWriteOutPort = 0xd1,
  kWriteKbdOut = 0xd2,
  kWriteAuxOut = 0xd3,
  kWriteAux = 0xd4,
  kA20Off = 0xdd,
  kA20On = 0xdf,
  kPulseFirst = 0xf0,  // 0xf0-0xff pulse output port bits 0-3 low where the command bit is 0
};

}  // namespace

void I8042::reply(uint8_t value) {
  // One output buffer: a new reply replaces an unread one, as on the chip.
  out_ = value;
  obf_ = true;
}

bool I8042::command(uint8_t cmd) {
  pending_ = 0;
  switch (cmd) {
    case kReadCtr: reply(ctr_); return false;
    case kWriteCtr:
    case kWriteOutPort:
    case kWriteKbdOut:
    case kWriteAuxOut:
    case kWriteAux: pending_ = cmd; return false;
    case kAuxDisable: ctr_ |= kCtrAuxDis; return false;
    case kAuxEnable: return false;  // no AUX port: AUXDIS stays set, which is how Linux notices
    case kAuxTest: reply(0xff); return false;
    case kSelfTest: reply(0x55); return false;
    case kKbdTest: reply(0x00); return false;
    case kKbdDisable: ctr_ |= kCtrKbdDis; return false;
    case kKbdEnable: ctr_ &= static_cast<uint8_t>(~kCtrKbdDis); return false;
    case kReadOutPort: reply(outport_); return false;
    case kA20Off: outport_ &= static_cast<uint8_t>(~kOutA20); return false;
    case kA20On: outport_ |= kOutA20; return false;
    default: break;
  }
  if (cmd >= kPulseFirst) return !(cmd & kOutReset);  // 0xfe is the classic reset pulse
  stats_.unknown_commands.fetch_add(1, std::memory_order_relaxed);
  LOG_DEBUG("i8042: unknown command {:#x} ignored", cmd);
  return false;
}

bool I8042::data_write(uint8_t value) {
  uint8_t cmd = std::exchange(pending_, 0);
  switch (cmd) {
    case kWriteCtr:
      ctr_ = value | kCtrAuxDis;
      return false;
    case kWriteOutPort:
      outport_ = value;
      return !(value & kOutReset);  // the reset line is active low
    case kWriteKbdOut:
    case kWriteAuxOut:
      reply(value);
      return false;
    default:
      // kWriteAux, or a byte for the keyboard: nobody is there to receive it.
      stats_.dropped_bytes.fetch_add(1, std::memory_order_relaxed);
      LOG_DEBUG("i8042: byte {:#x} for an absent {} dropped", value, cmd == kWriteAux ? "AUX device" : "keyboard");
      return false;
  }
}

void I8042::read(const BusRead& io) {
  if (io.data.size() != 1 || (io.offset != kDataOffset && io.offset != kCommandOffset)) {
    std::fill(io.data.begin(), io.data.end(), 0xff);
    stats_.bad_accesses.fetch_add(1, std::memory_order_relaxed);
    LOG_DEBUG("i8042: {}-byte read at offset {} ignored", io.data.size(), io.offset);
    return;
  }
  std::lock_guard lock(mu_);
  if (io.offset == kDataOffset) {
    io.data[0] = out_;  // an empty buffer reads its last value again
    obf_ = false;
    return;
  }
  // IBF is always clear: the controller consumes every write at once.
  io.data[0] = static_cast<uint8_t>((obf_ ? kStrObf : 0) | kStrSys | (last_was_command_ ? kStrCmdData : 0) |
                                 kStrKeyLock);
}

void I8042::write(const BusWrite& io) {
  if (io.data.size() != 1 || (io.offset != kDataOffset && io.offset != kCommandOffset)) {
    stats_.bad_accesses.fetch_add(1, std::memory_order_relaxed);
    LOG_DEBUG("i8042: {}-byte write at offset {} ignored", io.data.size(), io.offset);
    return;
  }
  bool reset;
  {
    std::lock_guard lock(mu_);
    last_was_command_ = io.offset == kCommandOffset;
    reset = last_was_command_ ? command(io.data[0]) : data_write(io.data[0]);
  }
  if (reset) {
    stats_.resets.fetch_add(1, std::memory_order_relaxed);
    LOG_DEBUG("i8042: guest pulsed the reset line");
    vm_.request_stop(StopReason::Reset, 0);
  }
}

}  // namespace evmm
