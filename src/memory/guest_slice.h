// A checked window onto guest memory, the only way code outside memory/ reaches guest bytes
// (STYLE.md rules 6 and 12; the model is rust-vmm vm-memory's Bytes and get_atomic_ref).
//
// Rules:
//   - Every access names an offset into the slice and is bounds-checked first; an access that
//     would cross the end touches nothing and fails with EFAULT.
//   - Atomic accesses (load, store, fetch_or, fetch_and, exchange, compare_exchange) take 1, 2, 4
//     or 8-byte unsigned words at their natural alignment in host memory; a misaligned one fails
//     with EINVAL and touches nothing. The caller names the memory order. compare_exchange_16
//     takes two words at 16-byte alignment and is always sequentially consistent.
//   - Plain copies (copy_in, copy_out, fill, copy_from, read_obj, write_obj) are for bytes the
//     guest does not change at the same time, or whose readers follow a protocol (a seqlock).
//   - A slice does not own memory: one from GuestMemory::slice stays valid while that GuestMemory
//     lives; one from over_buffer while the caller's buffer does.
//
// Errors: EFAULT for an access outside the slice, EINVAL for a misaligned atomic.
#pragma once

#include <atomic>
#include <concepts>
#include <cstdint>
#include <cstring>
#include <span>
#include <type_traits>

#include "base/result.h"

namespace evmm {

// The word types an atomic access may use.
template <typename T>
concept GuestAtomicWord =
    std::same_as<T, uint8_t> || std::same_as<T, uint16_t> || std::same_as<T, uint32_t> || std::same_as<T, uint64_t>;

class GuestSlice {
 public:
  // An empty slice: every access but one of zero bytes fails.
  GuestSlice() = default;
  // A slice over a buffer the caller owns and keeps alive (test pages, fakes); never guest RAM,
  // which only GuestMemory::slice hands out.
  static GuestSlice over_buffer(std::span<uint8_t> buf) { return GuestSlice(buf.data(), buf.size()); }

  uint64_t size() const { return len_; }
  bool empty() const { return len_ == 0; }
  // [off, off+len) of this slice.
  Result<GuestSlice> subslice(uint64_t off, uint64_t len) const;

  // Host bytes into the slice at off, and slice bytes at off out to the host.
  Result<void> copy_in(uint64_t off, std::span<const uint8_t> src) const;
  Result<void> copy_out(uint64_t off, std::span<uint8_t> dst) const;
  Result<void> fill(uint64_t off, uint8_t byte, uint64_t len) const;
  // All of src into the start of this slice; the two may overlap.
  Result<void> copy_from(const GuestSlice& src) const;

  template <typename T>
  Result<T> read_obj(uint64_t off) const {
    static_assert(std::is_trivially_copyable_v<T>);
    T v;
    // SAFETY: v is a trivially copyable local of sizeof v bytes.
    TRY(copy_out(off, std::span(reinterpret_cast<uint8_t*>(&v), sizeof v)));
    return v;
  }
  template <typename T>
  Result<void> write_obj(uint64_t off, const T& v) const {
    static_assert(std::is_trivially_copyable_v<T>);
    // SAFETY: v is a trivially copyable object of sizeof v bytes.
    return copy_in(off, std::span(reinterpret_cast<const uint8_t*>(&v), sizeof v));
  }

  // Whether a T at off lies inside the slice at its natural alignment.
  template <GuestAtomicWord T>
  bool atomic_ok(uint64_t off) const {
    return in_bounds(off, sizeof(T)) && reinterpret_cast<uintptr_t>(base_ + off) % std::atomic_ref<T>::required_alignment == 0;
  }

  template <GuestAtomicWord T>
  Result<T> load(uint64_t off, std::memory_order o) const {
    return TRY(atomic_at<T>(off)).load(o);
  }
  template <GuestAtomicWord T>
  Result<void> store(uint64_t off, T v, std::memory_order o) const {
    TRY(atomic_at<T>(off)).store(v, o);
    return {};
  }
  // The read-modify-writes return the value before the operation.
  template <GuestAtomicWord T>
  Result<T> fetch_or(uint64_t off, T v, std::memory_order o) const {
    return TRY(atomic_at<T>(off)).fetch_or(v, o);
  }
  template <GuestAtomicWord T>
  Result<T> fetch_and(uint64_t off, T v, std::memory_order o) const {
    return TRY(atomic_at<T>(off)).fetch_and(v, o);
  }
  template <GuestAtomicWord T>
  Result<T> exchange(uint64_t off, T v, std::memory_order o) const {
    return TRY(atomic_at<T>(off)).exchange(v, o);
  }
  // Stores desired if the word holds expected; returns what the word held (== expected on success).
  template <GuestAtomicWord T>
  Result<T> compare_exchange(uint64_t off, T expected, T desired, std::memory_order o) const {
    TRY(atomic_at<T>(off)).compare_exchange_strong(expected, desired, o);
    return expected;
  }
  // The same on 16 bytes (low word first), as the guest's cmpxchg16b needs: lock cmpxchg16b on
  // the host, since std::atomic of 16 bytes may take a lock that the guest does not share.
  struct Words16 {
    uint64_t lo, hi;
    bool operator==(const Words16&) const = default;
  };
  Result<Words16> compare_exchange_16(uint64_t off, Words16 expected, Words16 desired) const;

 private:
  friend class GuestMemory;
  friend class AddressSpace;
  GuestSlice(uint8_t* base, uint64_t len) : base_(base), len_(len) {}

  bool in_bounds(uint64_t off, uint64_t len) const { return off <= len_ && len <= len_ - off; }
  Result<uint8_t*> at(uint64_t off, uint64_t len) const;
  Result<void> misaligned(uint64_t off, uint64_t len) const;

  template <GuestAtomicWord T>
  Result<std::atomic_ref<T>> atomic_at(uint64_t off) const {
    uint8_t* p = TRY(at(off, sizeof(T)));
    if (reinterpret_cast<uintptr_t>(p) % std::atomic_ref<T>::required_alignment != 0) TRY(misaligned(off, sizeof(T)));
    // SAFETY: sizeof(T) bytes in bounds and naturally aligned, checked above; the guest shares them,
    // so they are reached only atomically here.
    return std::atomic_ref<T>(*reinterpret_cast<T*>(p));
  }

  uint8_t* base_ = nullptr;
  uint64_t len_ = 0;
};

}  // namespace evmm
