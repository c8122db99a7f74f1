#include "base/discard.h"

#include <gtest/gtest.h>

namespace evmm {
namespace {

TEST(Discard, CountsFailuresOnly) {
  std::atomic<uint64_t> count{0};
  discard_error(Result<void>{}, count, "nothing to see");
  discard_error(Result<int>{3}, count, "nothing to see either");
  EXPECT_EQ(count.load(), 0u);
  discard_error(Result<void>(make_error(EBADF, "an eventfd")), count, "signalling {}", "a wake eventfd");
  discard_error(Result<int>(make_error(EAGAIN, "again")), count, "reading");
  EXPECT_EQ(count.load(), 2u);
}

}  // namespace
}  // namespace evmm
