// A log of guest pages written, in memory two processes share: the layout of vhost's dirty log
// (VHOST_SET_LOG_BASE, and vhost-user's SET_LOG_BASE with LOG_SHMFD), bit (p % 8) of byte (p / 8)
// for the 4 KiB page p of guest physical address space. One side marks pages after its writes to
// them land (a vhost-user backend); the other (the VMM collecting a round for a migration or a
// snapshot) takes and clears them whole, so a page marked once is taken exactly once.
//
// Rules:
//   - Marks are atomic byte ORs with release order, takes atomic 64-bit exchanges (the two sizes
//     mix safely on the one cache line, as QEMU and the kernel's vhost rely on too).
//   - A mark past the end of the log is refused and counted, never written: the other process
//     chose the log's size.
//   - The mapping stays valid for the object's life; a log from map() must lie inside its file
//     (ERANGE otherwise), so no access can fault on a page the file does not have.
#pragma once

#include <atomic>
#include <cstdint>
#include <memory>
#include <span>
#include <vector>

#include "base/fd.h"
#include "base/result.h"
#include "memory/guest_address.h"

namespace evmm {

// The page numbers whose bits are set in words (bit b of word w: page w * 64 + b), ascending.
std::vector<uint64_t> set_pages(std::span<const uint64_t> words);

class PageLog {
 public:
  static constexpr uint64_t kPage = 4096;
  // The largest log mapped from another process: 1 GiB, which covers 32 TiB of guest addresses.
  static constexpr uint64_t kMaxBytes = 1ull << 30;

  // A log for guest addresses below limit, in a new memfd (the taking side). EINVAL for limit 0.
  static Result<PageLog> create(uint64_t limit);
  // The log another process made: size bytes at offset in fd (the marking side). EINVAL for size 0
  // or an offset that wraps, ENOMEM over kMaxBytes, ERANGE past the end of the file, ENODEV for
  // an fd that cannot be mapped.
  static Result<PageLog> map(int fd, uint64_t size, uint64_t offset);

  PageLog(PageLog&& o) noexcept;
  PageLog& operator=(PageLog&&) = delete;
  ~PageLog();

  int fd() const { return fd_.get(); }    // create() only; -1 for a mapped log
  uint64_t size() const { return size_; }  // bytes
  // Guest addresses below this are covered.
  uint64_t limit() const { return size_ * 8 * kPage; }

  // Marks the pages of [addr, addr + len); false when any lies past the log (those are not
  // marked, and counted).
  bool mark(GuestAddress addr, uint64_t len);
  // Takes and clears every mark: word w, bit b is page w * 64 + b. create() logs only.
  std::vector<uint64_t> take();
  uint64_t refused() const { return refused_.load(std::memory_order_relaxed); }

 private:
  PageLog(UniqueFd fd, void* map, uint64_t map_len, uint8_t* bits, uint64_t size)
      : fd_(std::move(fd)), map_(map), map_len_(map_len), bits_(bits), size_(size) {}

  UniqueFd fd_;
  void* map_ = nullptr;
  uint64_t map_len_ = 0;
  uint8_t* bits_ = nullptr;  // the log's first byte (map_ plus the offset's part below a page)
  uint64_t size_ = 0;
  std::atomic<uint64_t> refused_{0};
};

}  // namespace evmm
