#include "base/log.h"

#include <unistd.h>

#include <string>

namespace evmm {
namespace {
std::atomic<LogLevel> g_level{LogLevel::Warn};
constexpr const char* kNames[] = {"error", "warn", "info", "debug"};
}  // namespace

LogLevel log_level() { return g_level.load(std::memory_order_relaxed); }
void set_log_level(LogLevel level) { g_level.store(level, std::memory_order_relaxed); }

void log_line(LogLevel level, std::string_view text) {
  // One write(2) per line so that lines from different threads never interleave.
  std::string line = fmt::format("evmm: {}: {}\n", kNames[static_cast<int>(level)], text);
  [[maybe_unused]] auto n = ::write(STDERR_FILENO, line.data(), line.size());
}

}  // namespace evmm
