// The 16550A UART (devices/serial.h) driven by a guest's register accesses and by host input.
// Input: device_ops.h operations at COM1; extra op pushes (arg & 31) + 1 input bytes from the host.
// Invariants from serial.h: every register is one byte wide (other widths read all-ones);
// transmission is instantaneous (LSR always shows THRE and TEMT); a THR write outside loopback
// reaches the sink at once and nothing else does; host input is refused without RTS or in loopback.
// The receiver is modelled as a FIFO of 64 bytes (1 without FCR's FIFO enable), fed by host input
// or, in loopback, by THR: push_input takes exactly what fits, RBR returns the bytes in order (the
// last one again when empty), LSR.DR says whether any are left, and FCR clears them.
#include <deque>
#include <memory>
#include <vector>

#include "bus/io_bus.h"
#include "device_ops.h"
#include "testing/device_test_fakes.h"
#include "devices/serial.h"
#include "memory/layout.h"

using namespace evmm;

namespace {

constexpr uint8_t kLcrDlab = 0x80, kMcrRts = 0x02, kMcrLoop = 0x10;
constexpr uint8_t kLsrDr = 0x01, kLsrThre = 0x20, kLsrTemt = 0x40;
constexpr uint8_t kFcrEnable = 0x01, kFcrClearRx = 0x02;

}  // namespace

extern "C" int LLVMFuzzerInitialize(int*, char***) {
  fuzz_quiet_logs();
  return 0;
}

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  fuzz::Input in(data, size);
  testing::FakeInterruptLine irq;
  std::vector<uint8_t> sent;
  auto serial = std::make_shared<Serial>(irq, [&](std::span<const uint8_t> b) { sent.insert(sent.end(), b.begin(), b.end()); });
  int space_callbacks = 0;
  serial->set_rx_space_callback([&] { ++space_callbacks; });
  IoBus bus("pio");
  FUZZ_CHECK(bus.insert(platform::kCom1Port, Serial::kRangeLen, serial, "com1"));

  uint8_t lcr = 0, mcr = 0, fcr = 0;  // as the guest last wrote them
  std::deque<uint8_t> rx;             // what RBR will return, in order
  uint8_t rbr = 0;                    // the last byte received
  auto capacity = [&] { return (fcr & kFcrEnable) ? Serial::kRxFifoSize : size_t{1}; };
  fuzz::Op op;
  while (fuzz::next_op(in, &op)) {
    bool one_byte = op.width == 1 && op.offset < Serial::kRangeLen;
    bool dlab = lcr & kLcrDlab;
    switch (op.kind) {
      case fuzz::Op::Read:
        bus.read(platform::kCom1Port + op.offset, op.bytes(), 0);
        if (!one_byte) {
          FUZZ_CHECK(fuzz::all_ones(op.bytes()));
        } else if (op.offset == 0 && !dlab) {
          if (!rx.empty()) {
            rbr = rx.front();
            rx.pop_front();
          }
          FUZZ_CHECK(op.data[0] == rbr);
        } else if (op.offset == 5) {
          FUZZ_CHECK((op.data[0] & (kLsrThre | kLsrTemt)) == (kLsrThre | kLsrTemt));
          FUZZ_CHECK(((op.data[0] & kLsrDr) != 0) == !rx.empty());
        } else if (op.offset == 4) {
          FUZZ_CHECK(op.data[0] == (mcr & 0x1f));  // bits 5-7 read 0 on the 16550A
        } else if (op.offset == 3) {
          FUZZ_CHECK(op.data[0] == lcr);
        }
        break;
      case fuzz::Op::Write: {
        size_t before = sent.size();
        bus.write(platform::kCom1Port + op.offset, op.bytes(), 0);
        bool thr = one_byte && op.offset == 0 && !dlab;
        bool tx = thr && !(mcr & kMcrLoop);
        FUZZ_CHECK(sent.size() == before + (tx ? 1 : 0));
        if (tx) FUZZ_CHECK(sent.back() == op.data[0]);
        if (thr && (mcr & kMcrLoop) && rx.size() < capacity()) rx.push_back(op.data[0]);
        if (one_byte && op.offset == 2) {
          uint8_t v = op.data[0];
          // Changing the FIFO enable bit, or FCR bit 1, empties the receiver (PC16550D, FCR).
          if (((v ^ fcr) & kFcrEnable) || (v & kFcrClearRx)) rx.clear();
          fcr = (v & kFcrEnable) ? v : 0;
        }
        if (one_byte && op.offset == 3) lcr = op.data[0];
        if (one_byte && op.offset == 4) mcr = op.data[0] & 0x1f;
        break;
      }
      case fuzz::Op::Clock:
        break;  // the UART has no notion of time
      case fuzz::Op::Extra: {
        auto bytes = in.bytes((op.arg & 31) + 1u);
        size_t took = serial->push_input(bytes);
        bool accepting = (mcr & kMcrRts) && !(mcr & kMcrLoop);
        size_t room = accepting ? capacity() - std::min(rx.size(), capacity()) : 0;
        FUZZ_CHECK(took == std::min(room, bytes.size()));
        rx.insert(rx.end(), bytes.begin(), bytes.begin() + static_cast<ptrdiff_t>(took));
        break;
      }
    }
  }
  FUZZ_CHECK(serial->stats().overruns <= serial->stats().tx_bytes);
  return 0;
}
