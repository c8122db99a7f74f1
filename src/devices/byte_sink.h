// Where a device's output bytes go (a console, a log file, a test buffer).
#pragma once

#include <cstdint>
#include <functional>
#include <span>

namespace evmm {

// Called from vCPU threads, possibly several at once: a sink shared by devices must be thread-safe.
// The span is valid only for the duration of the call.
using ByteSink = std::function<void(std::span<const uint8_t>)>;

}  // namespace evmm
