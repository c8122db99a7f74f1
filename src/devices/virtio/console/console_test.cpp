// virtio-console driven as a guest would (testing/virtio_driver.h): output to a sink, input with
// back-pressure.
#include "devices/virtio/console/console.h"

#include <gtest/gtest.h>

#include <string>

#include "testing/virtio_driver.h"

namespace evmm::virtio {
namespace {

using testing::VirtioTestDriver;
constexpr uint64_t kData = 0x200000;

struct ConsoleRig {
  ConsoleRig() {
    dev = *ConsoleDevice::create([this](std::span<const uint8_t> b) { out.append(b.begin(), b.end()); });
    dev->set_space_callback([this] { ++space_calls; });
    drv = std::make_unique<VirtioTestDriver>(dev);
  }
  void write_guest(uint64_t at, std::string_view s) {
    ASSERT_TRUE(drv->mem.write(GuestAddress(at), std::span(reinterpret_cast<const uint8_t*>(s.data()), s.size())));
  }
  std::string read_guest(uint64_t at, size_t n) {
    std::string s(n, '\0');
    EXPECT_TRUE(drv->mem.read(GuestAddress(at), std::span(reinterpret_cast<uint8_t*>(s.data()), n)));
    return s;
  }
  size_t push(std::string_view s) { return dev->push_input(std::span(reinterpret_cast<const uint8_t*>(s.data()), s.size())); }

  std::string out;
  int space_calls = 0;
  std::shared_ptr<ConsoleDevice> dev;
  std::unique_ptr<VirtioTestDriver> drv;
};

TEST(VirtioConsole, OutputReachesTheSinkInOrder) {
  ConsoleRig r;
  ASSERT_TRUE(r.drv->init(1ull << VIRTIO_RING_F_EVENT_IDX, 2) & VIRTIO_CONFIG_S_DRIVER_OK);
  EXPECT_EQ(r.drv->reg(VIRTIO_MMIO_DEVICE_ID), 3u);
  r.write_guest(kData, "Linux version");
  r.write_guest(kData + 0x100, " 6.1\n");
  r.drv->submit(1, {{kData, 5, false}, {kData + 5, 8, false}});
  r.drv->submit(1, {{kData + 0x100, 5, false}});
  r.drv->notify(1);
  EXPECT_EQ(r.out, "Linux version 6.1\n");
  EXPECT_EQ(r.drv->used_idx(1), 2);
  EXPECT_EQ(r.dev->metrics().tx_bytes.load(), 18u);
}

TEST(VirtioConsole, WritableTransmitBuffersAreRefused) {
  ConsoleRig r;
  ASSERT_TRUE(r.drv->init(0, 2) & VIRTIO_CONFIG_S_DRIVER_OK);
  r.write_guest(kData, "secret");
  r.drv->submit(1, {{kData, 6, false}, {kData + 0x100, 6, true}});
  r.write_guest(kData + 0x200, "ok");
  r.drv->submit(1, {{kData + 0x200, 2, false}});
  r.drv->notify(1);
  EXPECT_EQ(r.out, "ok");
  EXPECT_EQ(r.dev->metrics().bad_chains.load(), 1u);
}

TEST(VirtioConsole, InputWaitsForReceiveBuffers) {
  ConsoleRig r;
  ASSERT_TRUE(r.drv->init(0, 2) & VIRTIO_CONFIG_S_DRIVER_OK);
  EXPECT_EQ(r.push("ls\n"), 3u);
  r.drv->run();
  EXPECT_FALSE(r.drv->next_used(0));
  r.drv->submit(0, {{kData, 2, true}});
  r.drv->submit(0, {{kData + 0x100, 64, true}});
  r.drv->notify(0);
  auto a = r.drv->next_used(0), b = r.drv->next_used(0);
  ASSERT_TRUE(a && b);
  EXPECT_EQ(a->len, 2u);
  EXPECT_EQ(b->len, 1u);
  EXPECT_EQ(r.read_guest(kData, 2) + r.read_guest(kData + 0x100, 1), "ls\n");
  EXPECT_EQ(r.space_calls, 0);  // nothing was refused
}

TEST(VirtioConsole, FullInputTakesLessAndSaysWhenThereIsRoom) {
  ConsoleRig r;
  ASSERT_TRUE(r.drv->init(0, 2) & VIRTIO_CONFIG_S_DRIVER_OK);
  std::string typed(ConsoleDevice::kInputBuffer + 1000, 'x');
  for (size_t i = 0; i < typed.size(); ++i) typed[i] = char('a' + i % 26);
  size_t took = r.push(typed);
  EXPECT_EQ(took, ConsoleDevice::kInputBuffer);
  EXPECT_EQ(r.push("more"), 0u);
  EXPECT_EQ(r.dev->metrics().input_full.load(), 2u);
  r.drv->submit(0, {{kData, 1000, true}});
  r.drv->notify(0);
  EXPECT_EQ(r.space_calls, 0);  // 3096 bytes still wait
  for (int i = 1; i <= 4; ++i) r.drv->submit(0, {{kData + 0x1000 * uint64_t(i), 1000, true}});
  r.drv->notify(0);
  EXPECT_EQ(r.space_calls, 1);
  EXPECT_EQ(r.push(std::string_view(typed).substr(took)), 1000u);
  r.drv->submit(0, {{kData + 0x8000, 1000, true}});
  r.drv->notify(0);
  std::string got;
  uint64_t at[] = {kData, kData + 0x1000, kData + 0x2000, kData + 0x3000, kData + 0x4000, kData + 0x8000};
  for (uint64_t a : at) {
    auto u = r.drv->next_used(0);
    ASSERT_TRUE(u);
    got += r.read_guest(a, u->len);
  }
  EXPECT_EQ(got, typed);
  EXPECT_EQ(r.dev->metrics().rx_bytes.load(), typed.size());
}

TEST(VirtioConsole, ReadableReceiveBuffersAreRefused) {
  ConsoleRig r;
  ASSERT_TRUE(r.drv->init(0, 2) & VIRTIO_CONFIG_S_DRIVER_OK);
  r.drv->submit(0, {{kData, 16, false}});
  r.drv->submit(0, {{kData + 0x100, 16, true}});
  r.push("y");
  r.drv->run();
  auto a = r.drv->next_used(0), b = r.drv->next_used(0);
  ASSERT_TRUE(a && b);
  EXPECT_EQ(a->len, 0u);
  EXPECT_EQ(b->len, 1u);
  EXPECT_EQ(r.dev->metrics().bad_chains.load(), 1u);
}

}  // namespace
}  // namespace evmm::virtio
