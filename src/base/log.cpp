#include "base/log.h"

#include <unistd.h>

#include <algorithm>
#include <chrono>
#include <mutex>
#include <string>
#include <utility>

namespace evmm {
namespace {
std::atomic<LogLevel> g_level{LogLevel::Warn};
constexpr const char* kNames[] = {"error", "warn", "info", "debug"};

// The rate bound (log.h): a token bucket shared by every thread.
struct Bucket {
  std::mutex mu;
  double tokens = kLogBurst;
  std::chrono::steady_clock::time_point last = std::chrono::steady_clock::now();
  uint64_t dropped_since_last = 0;
};
Bucket g_bucket;
std::atomic<uint64_t> g_dropped{0};

// Whether a line may go out now; if so, how many were dropped before it.
bool take_token(uint64_t* dropped_before) {
  std::lock_guard lock(g_bucket.mu);
  auto now = std::chrono::steady_clock::now();
  double elapsed = std::chrono::duration<double>(now - g_bucket.last).count();
  g_bucket.last = now;
  g_bucket.tokens = std::min<double>(kLogBurst, g_bucket.tokens + elapsed * kLogLinesPerSecond);
  if (g_bucket.tokens < 1) {
    ++g_bucket.dropped_since_last;
    g_dropped.fetch_add(1, std::memory_order_relaxed);
    return false;
  }
  g_bucket.tokens -= 1;
  *dropped_before = std::exchange(g_bucket.dropped_since_last, 0);
  return true;
}
}  // namespace

uint64_t log_lines_dropped() { return g_dropped.load(std::memory_order_relaxed); }

LogLevel log_level() { return g_level.load(std::memory_order_relaxed); }
void set_log_level(LogLevel level) { g_level.store(level, std::memory_order_relaxed); }

void log_line(LogLevel level, std::string_view text) {
  uint64_t dropped = 0;
  if (!take_token(&dropped)) return;
  // One write(2) per line so that lines from different threads never interleave.
  std::string line;
  if (dropped) line = fmt::format("evmm: warn: {} log lines dropped (at most {} a second)\n", dropped, kLogLinesPerSecond);
  line += fmt::format("evmm: {}: {}\n", kNames[static_cast<int>(level)], text);
  [[maybe_unused]] auto n = ::write(STDERR_FILENO, line.data(), line.size());
}

}  // namespace evmm
