// Results nobody can act on, such as a wakeup eventfd that would not signal on a path with no
// caller to fail back to, are logged and counted, never silently dropped (STYLE.md rule 3); the
// counts reach `evmm run --stats`.
#pragma once

#include <atomic>
#include <cstdint>
#include <utility>

#include <fmt/format.h>

#include "base/log.h"
#include "base/result.h"

namespace evmm {

// When r failed: counts it in count and logs what was being done (formatted only then), with the error.
template <class T, class... Args>
void discard_error(const Result<T>& r, std::atomic<uint64_t>& count, fmt::format_string<Args...> what,
                   Args&&... args) {
  if (r) return;
  count.fetch_add(1, std::memory_order_relaxed);
  LOG_WARN("{}: {} (ignored)", fmt::format(what, std::forward<Args>(args)...), r.error().message());
}

}  // namespace evmm
