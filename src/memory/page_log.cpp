#include "memory/page_log.h"

#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

#include <bit>
#include <utility>

namespace evmm {

namespace {
constexpr uint64_t kHostPage = 4096;
}  // namespace

std::vector<uint64_t> set_pages(std::span<const uint64_t> words) {
  std::vector<uint64_t> out;
  for (size_t w = 0; w < words.size(); ++w)
    for (uint64_t bits = words[w]; bits; bits &= bits - 1) out.push_back(w * 64 + uint64_t(std::countr_zero(bits)));
  return out;
}

Result<PageLog> PageLog::create(uint64_t limit) {
  if (limit == 0) return make_error(EINVAL, "page log: no guest addresses to cover");
  // One bit a page, in whole 64-bit words so that take() reads aligned words only.
  const uint64_t pages = (limit + kPage - 1) / kPage;
  const uint64_t size = (pages + 63) / 64 * 8;
  UniqueFd fd(::memfd_create("evmm-page-log", MFD_CLOEXEC));
  if (!fd.valid()) return errno_error("page log: memfd_create");
  if (::ftruncate(fd.get(), static_cast<off_t>(size)) != 0) return errno_error("page log: ftruncate {}", size);
  void* p = ::mmap(nullptr, size, PROT_READ | PROT_WRITE, MAP_SHARED, fd.get(), 0);
  if (p == MAP_FAILED) return errno_error("page log: mmap {} bytes", size);
  return PageLog(std::move(fd), p, size, static_cast<uint8_t*>(p), size);
}

Result<PageLog> PageLog::map(int fd, uint64_t size, uint64_t offset) {
  uint64_t end;
  if (size == 0 || __builtin_add_overflow(offset, size, &end))
    return make_error(EINVAL, "page log: {} bytes at {:#x}", size, offset);
  if (size > kMaxBytes) return make_error(ENOMEM, "page log: {} bytes (at most {})", size, kMaxBytes);
  struct stat st;
  if (::fstat(fd, &st) != 0) return errno_error("page log: fstat");
  if (!S_ISREG(st.st_mode)) return make_error(ENODEV, "page log: the fd is not a memfd or a regular file");
  if (end > static_cast<uint64_t>(st.st_size))
    return make_error(ERANGE, "page log: {} bytes at {:#x} run past the file's {}", size, offset, st.st_size);
  const uint64_t base = offset / kHostPage * kHostPage, lead = offset - base;
  void* p = ::mmap(nullptr, lead + size, PROT_READ | PROT_WRITE, MAP_SHARED, fd, static_cast<off_t>(base));
  if (p == MAP_FAILED) return errno_error("page log: mmap {} bytes", lead + size);
  return PageLog(UniqueFd(), p, lead + size, static_cast<uint8_t*>(p) + lead, size);
}

PageLog::PageLog(PageLog&& o) noexcept
    : fd_(std::move(o.fd_)),
      map_(std::exchange(o.map_, nullptr)),
      map_len_(std::exchange(o.map_len_, 0)),
      bits_(std::exchange(o.bits_, nullptr)),
      size_(std::exchange(o.size_, 0)),
      refused_(o.refused_.load()) {}

PageLog::~PageLog() {
  if (map_) ::munmap(map_, map_len_);
}

bool PageLog::mark(GuestAddress addr, uint64_t len) {
  if (len == 0) return true;
  const uint64_t first = addr.raw() / kPage;
  uint64_t last_addr;
  if (__builtin_add_overflow(addr.raw(), len - 1, &last_addr)) last_addr = UINT64_MAX;
  const uint64_t last = last_addr / kPage;
  bool all = true;
  for (uint64_t page = first; page <= last; ++page) {
    if (page / 8 >= size_) {
      refused_.fetch_add(1, std::memory_order_relaxed);
      all = false;
      break;
    }
    // The bytes written before this call are visible to whoever sees the bit.
    std::atomic_ref<uint8_t>(bits_[page / 8]).fetch_or(uint8_t(1u << (page % 8)), std::memory_order_release);
  }
  return all;
}

std::vector<uint64_t> PageLog::take() {
  std::vector<uint64_t> out(fd_.valid() ? size_ / 8 : 0);
  auto* words = reinterpret_cast<uint64_t*>(bits_);
  for (size_t w = 0; w < out.size(); ++w)
    if (std::atomic_ref<uint64_t>(words[w]).load(std::memory_order_relaxed))
      out[w] = std::atomic_ref<uint64_t>(words[w]).exchange(0, std::memory_order_acq_rel);
  return out;
}

}  // namespace evmm
