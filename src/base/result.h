// Errors as values: Result<T> carries either a value or an Error (errno plus context).
#pragma once

#include <cerrno>
#include <string>
#include <utility>

#include <fmt/format.h>
#include <tl/expected.hpp>

namespace evmm {

class Error {
 public:
  Error(int code, std::string context) : code_(code), context_(std::move(context)) {}

  // The errno value this error maps to; what a kernel interface would have returned.
  int code() const { return code_; }
  const std::string& context() const { return context_; }
  // One line for a human: the context, then the errno text.
  std::string message() const;

  // Prefixes more context, as an error travels up: "loading kernel: ELF: truncated".
  Error wrap(std::string_view outer) const& { return Error(code_, fmt::format("{}: {}", outer, context_)); }

 private:
  int code_;
  std::string context_;
};

template <typename T = void>
using Result = tl::expected<T, Error>;

inline tl::unexpected<Error> make_error(int code, std::string context) {
  return tl::unexpected<Error>(Error(code, std::move(context)));
}

template <typename... Args>
tl::unexpected<Error> make_error(int code, fmt::format_string<Args...> f, Args&&... args) {
  return make_error(code, fmt::format(f, std::forward<Args>(args)...));
}

// The errno of the system call that just failed, with context.
template <typename... Args>
tl::unexpected<Error> errno_error(fmt::format_string<Args...> f, Args&&... args) {
  int saved = errno;
  return make_error(saved, fmt::format(f, std::forward<Args>(args)...));
}

namespace detail {
// The value of a successful Result, moved out; nothing for Result<void>.
// Any error type, so that layers with a richer error (the assists' AssistError) can use TRY too.
template <typename T, typename E>
T take_value(tl::expected<T, E>&& r) { return std::move(*r); }
template <typename E>
void take_value(tl::expected<void, E>&&) {}
}  // namespace detail

}  // namespace evmm

// Evaluates a Result; on error returns it from the enclosing function, otherwise yields the value.
#define TRY(expr)                                                   \
  ({                                                                \
    auto&& try_result_ = (expr);                                    \
    if (!try_result_) return tl::unexpected(std::move(try_result_).error()); \
    ::evmm::detail::take_value(std::move(try_result_));            \
  })

// As TRY, but prefixes context to the error on the way out.
#define TRY_CTX(expr, ctx)                                                           \
  ({                                                                                 \
    auto&& try_result_ = (expr);                                                     \
    if (!try_result_) return tl::unexpected(std::move(try_result_).error().wrap(ctx)); \
    ::evmm::detail::take_value(std::move(try_result_));                              \
  })
