// Minimal leveled logging to stderr. Library code logs; it never exits the process.
#pragma once

#include <atomic>
#include <cstdint>
#include <cstdio>

#include <fmt/format.h>

namespace evmm {

enum class LogLevel { Error = 0, Warn = 1, Info = 2, Debug = 3 };

// Output is bounded, since guests can provoke warnings: at most kLogBurst lines at once and
// kLogLinesPerSecond after that. The lines over it are dropped and counted, and the next line that
// goes out says how many.
constexpr int kLogBurst = 1000;
constexpr int kLogLinesPerSecond = 100;
uint64_t log_lines_dropped();

// Set once at start-up by the embedding program; read by every thread.
LogLevel log_level();
void set_log_level(LogLevel level);
void log_line(LogLevel level, std::string_view text);

template <typename... Args>
void log(LogLevel level, fmt::format_string<Args...> f, Args&&... args) {
  if (level > log_level()) return;
  log_line(level, fmt::format(f, std::forward<Args>(args)...));
}

#define LOG_ERROR(...) ::evmm::log(::evmm::LogLevel::Error, __VA_ARGS__)
#define LOG_WARN(...) ::evmm::log(::evmm::LogLevel::Warn, __VA_ARGS__)
#define LOG_INFO(...) ::evmm::log(::evmm::LogLevel::Info, __VA_ARGS__)
#define LOG_DEBUG(...) ::evmm::log(::evmm::LogLevel::Debug, __VA_ARGS__)

}  // namespace evmm
