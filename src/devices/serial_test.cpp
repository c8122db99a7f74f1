#include "devices/serial.h"

#include <gtest/gtest.h>

#include <atomic>
#include <chrono>
#include <condition_variable>
#include <thread>
#include <vector>

#include "testing/device_test_fakes.h"

namespace evmm {
namespace {

using testing::FakeInterruptLine;

struct SerialTest : ::testing::Test {
  FakeInterruptLine irq;
  std::vector<uint8_t> out;
  Serial uart{irq, [this](std::span<const uint8_t> b) { out.insert(out.end(), b.begin(), b.end()); }};

  uint8_t in(uint64_t off) {
    uint8_t v = 0;
    uart.read({off, std::span(&v, 1), 0});
    return v;
  }
  void outb(uint64_t off, uint8_t v) { uart.write({off, std::span<const uint8_t>(&v, 1), 0}); }
  size_t push(std::vector<uint8_t> bytes) { return uart.push_input(bytes); }
};

// Most tests start where a driver leaves the UART: DTR, RTS and OUT2 up, so host input flows.
struct ReadyUart : SerialTest {
  ReadyUart() { outb(4, 0x0b); }
};

TEST_F(SerialTest, ResetState) {
  EXPECT_EQ(in(2), 0x01);  // no interrupt, FIFOs off
  EXPECT_EQ(in(5), 0x60);  // THRE | TEMT
  EXPECT_EQ(in(6), 0xb0);  // CTS, DSR, DCD asserted, no deltas
  EXPECT_EQ(in(1), 0x00);
  EXPECT_EQ(in(3), 0x00);
  EXPECT_EQ(in(4), 0x00);
  EXPECT_FALSE(irq.level());
}

TEST_F(ReadyUart, TransmitGoesToSink) {
  for (uint8_t c : {'h', 'i', '\n'}) outb(0, c);
  EXPECT_EQ(out, (std::vector<uint8_t>{'h', 'i', '\n'}));
  EXPECT_EQ(in(5) & 0x60, 0x60);
  EXPECT_EQ(uart.stats().tx_bytes, 3u);
}

TEST_F(ReadyUart, DivisorLatch) {
  outb(3, 0x83);  // DLAB, 8N1
  outb(0, 0x01);  // DLL: 115200 baud
  outb(1, 0x02);  // DLM
  EXPECT_EQ(in(0), 0x01);
  EXPECT_EQ(in(1), 0x02);
  EXPECT_TRUE(out.empty()) << "a DLL write must not transmit";
  EXPECT_EQ(in(3), 0x83);
  outb(3, 0x03);
  EXPECT_EQ(in(1), 0x00) << "IER, not DLM, with DLAB clear";
  outb(1, 0xff);
  EXPECT_EQ(in(1), 0x0f) << "IER bits 4-7 are always 0";
  outb(0, 'x');
  EXPECT_EQ(out, std::vector<uint8_t>{'x'});
  outb(3, 0x80);
  EXPECT_EQ(in(0), 0x01) << "the divisor survives THR writes";
  EXPECT_EQ(in(1), 0x02);
}

TEST_F(ReadyUart, ScratchRegister) {
  outb(7, 0x5a);
  EXPECT_EQ(in(7), 0x5a);
  outb(7, 0xa5);
  EXPECT_EQ(in(7), 0xa5);
}

TEST_F(ReadyUart, LoopbackEchoesAndMirrorsModemLines) {
  outb(4, 0x10);
  EXPECT_EQ(in(6) & 0xf0, 0x00) << "no MCR outputs, no modem inputs";
  // Linux's autoconfig check: LOOP | OUT2 | RTS reads back as DCD | CTS (0x90).
  outb(4, 0x1a);
  EXPECT_EQ(in(6) & 0xf0, 0x90);
  outb(4, 0x1f);
  EXPECT_EQ(in(6) & 0xf0, 0xf0);
  outb(0, 0x42);
  EXPECT_TRUE(out.empty()) << "loopback keeps TX off the wire";
  EXPECT_EQ(in(5) & 0x01, 0x01);
  EXPECT_EQ(in(0), 0x42);
  EXPECT_EQ(in(5) & 0x01, 0x00);
  outb(4, 0x00);
  EXPECT_EQ(in(6) & 0xf0, 0xb0);
  outb(0, 0x43);
  EXPECT_EQ(out, std::vector<uint8_t>{0x43});
}

TEST_F(ReadyUart, ModemStatusDeltas) {
  outb(4, 0x10);
  in(6);  // entering loopback changed the lines; clear the deltas
  outb(4, 0x10 | 0x02 | 0x04);  // RTS and OUT1: CTS rises, RI rises
  EXPECT_EQ(in(6), 0x10 | 0x40 | 0x01) << "DCTS, no TERI on a rising RI";
  EXPECT_EQ(in(6), 0x50) << "reading MSR clears the deltas";
  outb(4, 0x10 | 0x02);  // RI falls: trailing edge
  EXPECT_EQ(in(6), 0x10 | 0x04);
}

TEST_F(ReadyUart, IirPriorityOrder) {
  outb(1, 0x0f);      // every source enabled
  in(2);              // the THRE raised by enabling ETBEI is now acknowledged
  outb(4, 0x10);      // loopback: MSR deltas pending, and a way to overrun
  outb(0, 'a');       // fills the 1-byte holding register (FIFOs off)
  outb(0, 'b');       // overrun; THRE pending again
  EXPECT_EQ(in(2), 0x06) << "line status first";
  EXPECT_TRUE(irq.level());
  EXPECT_EQ(in(5) & 0x03, 0x03) << "DR and OE";
  EXPECT_EQ(in(2), 0x04) << "then received data";
  EXPECT_EQ(in(0), 'a');
  EXPECT_EQ(in(2), 0x02) << "then THR empty";
  EXPECT_EQ(in(2), 0x00) << "reading IIR cleared THRE; then modem status";
  in(6);
  EXPECT_EQ(in(2), 0x01);
  EXPECT_FALSE(irq.level());
  EXPECT_EQ(uart.stats().overruns, 1u);
}

TEST_F(ReadyUart, ThreInterrupt) {
  outb(1, 0x02);
  EXPECT_EQ(in(2), 0x02);
  EXPECT_FALSE(irq.level()) << "reading IIR acknowledges THRE";
  EXPECT_EQ(in(2), 0x01);
  outb(0, 'x');
  EXPECT_TRUE(irq.level()) << "each transmitted byte empties THR again";
  outb(1, 0x00);
  EXPECT_FALSE(irq.level());
  // Linux's UART_BUG_THRE probe: re-enabling ETBEI must re-raise THRE.
  outb(1, 0x02);
  EXPECT_EQ(in(2), 0x02);
  outb(1, 0x00);
  outb(1, 0x02);
  EXPECT_EQ(in(2), 0x02);
  EXPECT_EQ(irq.levels(), (std::vector<bool>{true, false, true, false, true, false, true, false}));
}

TEST_F(ReadyUart, ReceiveInterruptFollowsData) {
  outb(1, 0x01);
  EXPECT_FALSE(irq.level());
  EXPECT_EQ(push({'q'}), 1u);
  EXPECT_TRUE(irq.level());
  EXPECT_EQ(in(2), 0x04);
  EXPECT_EQ(in(0), 'q');
  EXPECT_FALSE(irq.level());
  EXPECT_EQ(uart.stats().rx_bytes, 1u);
}

TEST_F(ReadyUart, FifoModeAndTriggerLevel) {
  outb(2, 0xc1);  // FIFOs on, trigger level 14
  EXPECT_EQ(in(2), 0xc1) << "IIR bits 6-7 report FIFO mode";
  outb(1, 0x01);
  ASSERT_EQ(push({1, 2, 3}), 3u);
  EXPECT_EQ(in(2), 0xcc) << "below the trigger level: character timeout";
  ASSERT_EQ(push(std::vector<uint8_t>(11, 9)), 11u);
  EXPECT_EQ(in(2), 0xc4) << "at the trigger level: received data available";
  outb(2, 0xc3);  // clear the RX FIFO
  EXPECT_EQ(in(5) & 0x01, 0);
  EXPECT_EQ(in(2), 0xc1);
  ASSERT_EQ(push({7}), 1u);
  outb(2, 0x00);  // turning the FIFOs off clears them too
  EXPECT_EQ(in(5) & 0x01, 0);
  EXPECT_EQ(in(2), 0x01);
}

TEST_F(ReadyUart, RxBackPressureLosesNothing) {
  int callbacks = 0;
  uart.set_rx_space_callback([&] { ++callbacks; });
  outb(2, 0x01);
  std::vector<uint8_t> data(100);
  for (size_t i = 0; i < data.size(); ++i) data[i] = static_cast<uint8_t>(i);
  EXPECT_EQ(uart.push_input(data), Serial::kRxFifoSize);
  EXPECT_EQ(uart.push_input(std::span(data).subspan(64)), 0u);
  EXPECT_EQ(callbacks, 0);
  EXPECT_EQ(in(0), 0);
  EXPECT_EQ(callbacks, 1) << "room appeared after a refused push";
  in(0);
  EXPECT_EQ(callbacks, 1) << "no second call until a push is refused again";
  EXPECT_EQ(uart.push_input(std::span(data).subspan(64)), 2u);
  EXPECT_EQ(callbacks, 1);
  in(0);
  EXPECT_EQ(callbacks, 2);
  EXPECT_EQ(uart.push_input(std::span(data).subspan(66)), 1u);
  std::vector<uint8_t> got;
  while (in(5) & 0x01) got.push_back(in(0));
  EXPECT_EQ(got.size(), 64u);
  for (size_t i = 0; i < got.size(); ++i) EXPECT_EQ(got[i], i + 3);
  EXPECT_EQ(uart.stats().overruns, 0u);
  EXPECT_EQ(in(5) & 0x02, 0) << "no overrun reported";
}

TEST_F(ReadyUart, NonFifoModeHoldsOneByte) {
  EXPECT_EQ(push({1, 2}), 1u);
  EXPECT_EQ(in(0), 1);
  EXPECT_EQ(push({2}), 1u);
}

// Host input waits for RTS, so the FIFO clear of a driver's initialisation (FCR before MCR) drops
// nothing the host handed over; raising RTS tells a refused feeder to try again.
TEST_F(SerialTest, HostInputWaitsForRts) {
  int callbacks = 0;
  uart.set_rx_space_callback([&] { ++callbacks; });
  EXPECT_EQ(push({'a', 'b'}), 0u);
  outb(2, 0x07);  // FIFO enable and clear, as a driver does first
  outb(4, 0x01);  // DTR alone is not a request to send
  EXPECT_EQ(push({'a'}), 0u);
  EXPECT_EQ(callbacks, 0);
  outb(4, 0x0b);
  EXPECT_EQ(callbacks, 1);
  EXPECT_EQ(push({'a', 'b'}), 2u);
  EXPECT_EQ(in(0), 'a');
  EXPECT_EQ(in(0), 'b');
  outb(4, 0x08);  // RTS down again: input stops, nothing already taken is lost
  EXPECT_EQ(push({'c'}), 0u);
}

TEST_F(ReadyUart, LoopbackRefusesHostInputUntilLeft) {
  int callbacks = 0;
  uart.set_rx_space_callback([&] { ++callbacks; });
  outb(4, 0x1b);
  EXPECT_EQ(push({'z'}), 0u);
  outb(4, 0x0b);
  EXPECT_EQ(callbacks, 1);
  EXPECT_EQ(push({'z'}), 1u);
  EXPECT_EQ(in(0), 'z');
}

TEST_F(SerialTest, WrongWidthAccessesAreIgnoredAndCounted) {
  outb(7, 0x11);
  uint8_t two[2] = {0, 0};
  uart.read({0, two, 0});
  EXPECT_EQ(two[0], 0xff);
  EXPECT_EQ(two[1], 0xff);
  uint8_t four[4] = {0x22, 0x22, 0x22, 0x22};
  uart.write({7 - 3, four, 0});
  uart.write({6, std::span<const uint8_t>(four, 2), 0});
  uart.read({4, four, 0});
  EXPECT_EQ(in(7), 0x11);
  EXPECT_EQ(in(4), 0x00);
  outb(5, 0x00);  // LSR is read-only
  outb(6, 0x00);  // so is MSR
  EXPECT_EQ(in(5), 0x60);
  EXPECT_EQ(uart.stats().bad_accesses, 6u);
  EXPECT_TRUE(out.empty());
}

// A feeder thread and a reader thread: every byte arrives, in order, through the callback protocol.
// Waits are bounded so that a lost wakeup fails the test instead of hanging it.
TEST_F(ReadyUart, ConcurrentFeederLosesNothing) {
  outb(2, 0x01);
  constexpr size_t kTotal = 5000;
  const auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(10);
  std::mutex mu;
  std::condition_variable cv;
  bool space = false;
  std::atomic<bool> stalled{false};
  uart.set_rx_space_callback([&] {
    std::lock_guard lock(mu);
    space = true;
    cv.notify_one();
  });
  std::thread feeder([&] {
    std::vector<uint8_t> data(kTotal);
    for (size_t i = 0; i < kTotal; ++i) data[i] = static_cast<uint8_t>(i * 7);
    size_t sent = 0;
    while (sent < kTotal && !stalled) {
      {
        std::lock_guard lock(mu);
        space = false;
      }
      sent += uart.push_input(std::span(data).subspan(sent));
      std::unique_lock lock(mu);
      if (sent < kTotal && !cv.wait_until(lock, deadline, [&] { return space; })) stalled = true;
    }
  });
  std::vector<uint8_t> got;
  while (got.size() < kTotal && !stalled && std::chrono::steady_clock::now() < deadline) {
    if (in(5) & 0x01) got.push_back(in(0));
  }
  stalled = stalled || got.size() < kTotal;
  feeder.join();
  ASSERT_FALSE(stalled) << "the feeder was never told about free space; got " << got.size();
  for (size_t i = 0; i < kTotal; ++i) ASSERT_EQ(got[i], static_cast<uint8_t>(i * 7)) << i;
  EXPECT_EQ(uart.stats().overruns, 0u);
}

}  // namespace
}  // namespace evmm
