#include "base/result.h"

#include <cstring>

namespace evmm {

std::string Error::message() const {
  if (code_ == 0) return context_;
  return fmt::format("{}: {}", context_, std::strerror(code_));
}

}  // namespace evmm
