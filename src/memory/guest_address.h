// A guest-physical address, kept distinct from host pointers and plain integers.
#pragma once

#include <compare>
#include <cstdint>
#include <optional>

#include <fmt/format.h>

namespace evmm {

class GuestAddress {
 public:
  constexpr GuestAddress() = default;
  constexpr explicit GuestAddress(uint64_t raw) : raw_(raw) {}

  constexpr uint64_t raw() const { return raw_; }
  // Wraps modulo 2^64 like the hardware; use checked_add where overflow is an error.
  constexpr GuestAddress operator+(uint64_t off) const { return GuestAddress(raw_ + off); }
  constexpr uint64_t operator-(GuestAddress o) const { return raw_ - o.raw_; }
  constexpr std::optional<GuestAddress> checked_add(uint64_t off) const {
    uint64_t r;
    if (__builtin_add_overflow(raw_, off, &r)) return std::nullopt;
    return GuestAddress(r);
  }
  constexpr auto operator<=>(const GuestAddress&) const = default;

 private:
  uint64_t raw_ = 0;
};

}  // namespace evmm

template <>
struct fmt::formatter<evmm::GuestAddress> : fmt::formatter<uint64_t> {
  template <typename Ctx>
  auto format(evmm::GuestAddress a, Ctx& ctx) const {
    return fmt::format_to(ctx.out(), "{:#x}", a.raw());
  }
};
