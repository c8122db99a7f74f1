// A bump allocator over a fixed window of guest memory, for boot data and firmware tables.
#pragma once

#include <cstdint>
#include <span>
#include <string>
#include <string_view>
#include <vector>

#include "base/result.h"
#include "memory/guest_memory.h"

namespace evmm::boot {

class GuestArena {
 public:
  // [start, end) must be guest RAM; name appears in errors ("boot scratch", "ACPI tables").
  GuestArena(const GuestMemory& mem, uint64_t start, uint64_t end, std::string name)
      : mem_(mem), next_(start), start_(start), end_(end), name_(std::move(name)) {}

  // Reserves size bytes aligned to align (a power of two); E2BIG when the window is full.
  Result<uint64_t> alloc(uint64_t size, uint64_t align);
  // Reserves and writes bytes; returns their guest address.
  Result<uint64_t> put(std::span<const uint8_t> bytes, uint64_t align);
  // Writes s and a NUL.
  Result<uint64_t> put_string(std::string_view s);
  template <typename T>
  Result<uint64_t> put_obj(const T& v, uint64_t align = alignof(T)) {
    return put(std::span(reinterpret_cast<const uint8_t*>(&v), sizeof v), align);
  }

  template <typename T>
  Result<uint64_t> put_array(const std::vector<T>& v, uint64_t align = alignof(T)) {
    return put(std::span(reinterpret_cast<const uint8_t*>(v.data()), v.size() * sizeof(T)), align);
  }

  uint64_t used() const { return next_ - start_; }

 private:
  const GuestMemory& mem_;
  uint64_t next_, start_, end_;
  std::string name_;
};

}  // namespace evmm::boot
