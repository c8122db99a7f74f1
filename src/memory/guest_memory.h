// Guest RAM: memfd-backed regions mapped into the VMM, reached only through bounds-checked accessors.
#pragma once

#include "kvm/kvm_uapi.h"  // first: it checks the kernel headers it wraps

#include <sys/uio.h>

#include <cstddef>
#include <cstdint>
#include <memory>
#include <span>
#include <string>
#include <type_traits>
#include <vector>

#include "base/fd.h"
#include "base/result.h"
#include "memory/guest_address.h"
#include "memory/guest_slice.h"

namespace evmm {

// The PC layout (see DESIGN.md and layout.h): what each region is for.
enum class RegionKind {
  Ram,   // ordinary RAM, e820 usable
  Bios,  // RAM-backed firmware area below 1 MiB that holds tables; e820 reserved
};

struct RegionSpec {
  GuestAddress start;
  uint64_t size;
  RegionKind kind = RegionKind::Ram;
};

struct MemoryRegion {
  GuestAddress start;
  uint64_t size;
  RegionKind kind;
  // The mapping in the VMM, size bytes: memory/'s own. KVM gets it through
  // GuestMemory::kvm_region(); everything else reaches guest bytes through the accessors and GuestSlice.
  uint8_t* host;
  uint64_t fd_offset;   // offset of this region in the backing memfd

  GuestAddress end() const { return start + size; }  // one past the last byte
  bool contains(GuestAddress a) const { return a >= start && a - start < size; }
};

class GuestMemory {
 public:
  // One memfd backs every region, each at its own offset; regions must be page-aligned and disjoint.
  static Result<GuestMemory> create(std::vector<RegionSpec> specs);
  // RAM of ram_bytes laid out as a PC: see memory/layout.h.
  static Result<GuestMemory> create_pc(uint64_t ram_bytes);

  GuestMemory(GuestMemory&&) noexcept;
  GuestMemory& operator=(GuestMemory&&) noexcept;
  ~GuestMemory();

  std::span<const MemoryRegion> regions() const { return regions_; }
  // Region `index` as KVM_SET_USER_MEMORY_REGION takes it, in slot `index`: the one way the host
  // mapping leaves memory/. index < regions().size().
  kvm_userspace_memory_region kvm_region(size_t index) const;
  int memfd() const { return memfd_.get(); }
  // Total bytes of RAM-kind regions (what the guest was given).
  uint64_t ram_bytes() const;
  // The highest guest-physical address backed by any region, plus one.
  GuestAddress end() const;

  // True when every byte of [addr, addr+len) is backed by some region.
  bool contains(GuestAddress addr, uint64_t len) const;

  // Copy to or from guest memory. An access that crosses regions is split; any byte outside all
  // regions makes the whole access fail with EFAULT and nothing is copied.
  Result<void> read(GuestAddress addr, std::span<uint8_t> out) const;
  Result<void> write(GuestAddress addr, std::span<const uint8_t> in) const;
  Result<void> fill(GuestAddress addr, uint8_t byte, uint64_t len) const;

  template <typename T>
  Result<T> read_obj(GuestAddress addr) const {
    static_assert(std::is_trivially_copyable_v<T>);
    T v;
    // SAFETY: v is a trivially copyable local of sizeof v bytes.
    TRY(read(addr, std::span(reinterpret_cast<uint8_t*>(&v), sizeof v)));
    return v;
  }
  template <typename T>
  Result<void> write_obj(GuestAddress addr, const T& v) const {
    static_assert(std::is_trivially_copyable_v<T>);
    // SAFETY: v is a trivially copyable object of sizeof v bytes.
    return write(addr, std::span(reinterpret_cast<const uint8_t*>(&v), sizeof v));
  }

  // A checked window onto [addr, addr+len) when it lies inside one region; EFAULT otherwise.
  Result<GuestSlice> slice(GuestAddress addr, uint64_t len) const;

  // The host iovecs of [addr, addr+len), one per region it crosses, appended to out: the one way a
  // host pointer into guest RAM leaves memory/, for vectored I/O (readv, io_uring) on a device's
  // data path. They stay valid while this GuestMemory lives. EFAULT, with nothing appended, for any
  // byte outside RAM. A zero-length range appends nothing.
  Result<void> io_vectors(GuestAddress addr, uint64_t len, std::vector<struct iovec>& out) const;

 private:
  friend class AddressSpace;  // AddressSpace::pin() makes the pinned form
  GuestMemory(UniqueFd memfd, std::vector<MemoryRegion> regions)
      : memfd_(std::move(memfd)), regions_(std::move(regions)) {}
  void unmap();
  // The region holding addr, or nullptr. Regions are sorted, so this is O(log n).
  const MemoryRegion* find(GuestAddress addr) const;
  template <typename Fn>
  Result<void> for_each_chunk(GuestAddress addr, uint64_t len, Fn&& fn) const;

  UniqueFd memfd_;
  std::vector<MemoryRegion> regions_;
  // Pinned form: the regions are an AddressSpace's mappings, which this holds (and does not unmap).
  std::shared_ptr<const void> pins_;
};

}  // namespace evmm
