#include "vmm/console.h"

#include <gtest/gtest.h>
#include <fcntl.h>
#include <sys/ioctl.h>
#include <unistd.h>

#include <string>
#include <vector>

namespace evmm {
namespace {

int unread(int fd) {
  int n = -1;
  ::ioctl(fd, FIONREAD, &n);
  return n;
}

// A guest that never reads its UART cannot make evmm buffer the host's input: the console holds at
// most one 4 KiB chunk and leaves the rest in the pipe until the device has room again.
TEST(ConsoleInput, AFullDeviceHoldsAtMostOneChunk) {
  int p[2];
  ASSERT_EQ(::pipe2(p, O_NONBLOCK), 0);
  ::fcntl(p[0], F_SETPIPE_SZ, 1 << 20);
  std::string data(256 * 1024, 'x');
  ASSERT_EQ(::write(p[1], data.data(), data.size()), ssize_t(data.size()));
  auto loop = EventLoop::create();
  ASSERT_TRUE(loop);
  size_t offered = 0, taken_limit = 0, taken = 0;
  auto in = ConsoleInput::attach(**loop, p[0], [&](std::span<const uint8_t> b) {
    offered += b.size();
    size_t n = std::min(b.size(), taken_limit - taken);
    taken += n;
    return n;
  });
  ASSERT_TRUE(in);
  for (int i = 0; i < 50; ++i) ASSERT_TRUE((*loop)->run_once(10));
  EXPECT_EQ(taken, 0u);
  EXPECT_GE(unread(p[0]), int(data.size() - 4096));  // the rest is still the pipe's

  // Room for 100 bytes: exactly those go in, in order, and still no more than a chunk is read.
  taken_limit = 100;
  (*in)->notify_space();
  for (int i = 0; i < 10; ++i) ASSERT_TRUE((*loop)->run_once(10));
  EXPECT_EQ(taken, 100u);
  EXPECT_GE(unread(p[0]), int(data.size() - 2 * 4096));
  in->reset();
  ::close(p[0]);
  ::close(p[1]);
}

}  // namespace
}  // namespace evmm
