#include "devices/debug_console.h"

#include <gtest/gtest.h>

#include <vector>

namespace evmm {
namespace {

struct DebugConsoleTest : ::testing::Test {
  std::vector<uint8_t> out;
  DebugConsole con{[this](std::span<const uint8_t> b) { out.insert(out.end(), b.begin(), b.end()); }};
};

TEST_F(DebugConsoleTest, WrittenBytesReachTheSink) {
  for (uint8_t c : {'o', 'k', '\n'}) con.write({0, std::span<const uint8_t>(&c, 1), 0});
  EXPECT_EQ(out, (std::vector<uint8_t>{'o', 'k', '\n'}));
  EXPECT_EQ(con.stats().bytes, 3u);
}

TEST_F(DebugConsoleTest, ReadReturnsPresenceByte) {
  uint8_t v = 0;
  con.read({0, std::span(&v, 1), 0});
  EXPECT_EQ(v, 0xe9);
}

TEST_F(DebugConsoleTest, WideAccessesAreIgnoredAndCounted) {
  uint8_t two[2] = {'a', 'b'};
  con.write({0, two, 0});
  con.read({0, two, 0});
  EXPECT_EQ(two[0], 0xff);
  EXPECT_EQ(two[1], 0xff);
  EXPECT_TRUE(out.empty());
  EXPECT_EQ(con.stats().bad_accesses, 2u);
}

}  // namespace
}  // namespace evmm
