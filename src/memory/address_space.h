// A guest address space identified by fds: the set of regions of guest memory, each a shared mapping
// of a file (a memfd), that any component of evmm, and any process the space is exported to, reaches
// through the same checked API with no KVM involved (seed 003; DESIGN.md §4 "Memory").
//
// Readers never lock. The regions form an immutable snapshot with a generation number; a writer
// (add_region, remove_region) builds a new snapshot and publishes it. Each thread keeps, per address
// space, the generation it last saw and the region it last used, so a run of accesses to one region
// costs a generation compare and a bounds check; a miss is a binary search of the snapshot.
//
// Reclamation is epoch-based: an access announces the generation it entered under in its thread's
// slot and clears it when done. remove_region publishes the snapshot without the region, waits until
// no slot holds an older generation, unmaps the region, and then tells every attached process, each
// of which does the same before it acknowledges. So when remove_region returns, no access in any
// process uses the region, and its fd offset may be reused.
//
// A pinned view (map) holds its region's mapping until the view is destroyed, for a device that
// keeps a ring or a buffer across accesses; remove_region does not wait for views, but the mapping
// (and so the host address the view reaches) stays valid until the last view of it goes.
//
// Errors: EFAULT for guest addresses outside every region; EINVAL for a region that is empty, not
// page-aligned or wraps; EEXIST for an overlap; ENOENT for removing what is not there; EBADF for a
// closed fd, ENODEV for an fd that is not a regular file or memfd, ERANGE for a file shorter than
// the region; the wire errors of memory/address_space_wire.h for a peer's messages.
#pragma once

#include <atomic>
#include <cstdint>
#include <memory>
#include <mutex>
#include <optional>
#include <span>
#include <type_traits>
#include <vector>

#include "base/fd.h"
#include "base/result.h"
#include "memory/address_space_wire.h"
#include "memory/guest_address.h"
#include "memory/guest_memory.h"
#include "memory/guest_slice.h"

namespace evmm {

namespace as_detail {
struct Mapping;
struct Snapshot;
struct ReaderSlot;
struct Peer;
}  // namespace as_detail

// Where a guest address lies: in the region starting at region_start, offset bytes in.
struct Translation {
  GuestAddress region_start;
  uint64_t offset;
  uint64_t fd_offset;  // offset of the address itself in the region's fd
  uint64_t contiguous;  // bytes from the address to the region's end
};

// A pinned view of [addr, addr+len) inside one region: its slice stays valid while the view lives.
// Writes through it are not tracked one by one: releasing the view (or destroying it) marks every
// page it covers dirty.
class MappedView {
 public:
  MappedView() = default;
  MappedView(MappedView&&) noexcept;
  MappedView& operator=(MappedView&&) noexcept;
  ~MappedView();
  const GuestSlice& slice() const { return slice_; }
  GuestAddress address() const { return addr_; }
  void release();

 private:
  friend class AddressSpace;
  std::shared_ptr<const as_detail::Mapping> mapping_;
  GuestSlice slice_;
  GuestAddress addr_;
  uint64_t offset_ = 0;  // of addr_ in the region
};

// One region's pages written since the last collection: bit i of bitmap is the page at start + i*4 KiB.
struct DirtyRegion {
  GuestAddress start;
  uint64_t size;
  std::vector<uint64_t> bitmap;
};

struct AddressSpaceStats {
  uint64_t generation;
  uint64_t regions;
  uint64_t bytes;
  uint64_t cache_hits;    // accesses served by the thread's last region
  uint64_t cache_misses;  // accesses that searched the snapshot
  uint64_t faults;        // accesses refused: an address outside every region
  uint64_t peer_errors;   // peers dropped: closed, timed out, or sent something malformed
};

// Whether a space keeps its own dirty log. Off is for a space whose writers report their writes
// elsewhere (a vhost-user backend, in vhost's log): no log memfd, nothing marked, nothing collected,
// and no export (a peer would have no log to mark).
enum class DirtyTracking { On, Off };

class AddressSpace {
 public:
  // An empty space, with its dirty log (a memfd) unless tracking is Off.
  static Result<std::unique_ptr<AddressSpace>> create(DirtyTracking tracking = DirtyTracking::On);
  // Receives a region table on sock (SOCK_SEQPACKET, from export_to) and maps every region: the
  // attached side. It applies later changes in serve_peer().
  static Result<std::unique_ptr<AddressSpace>> attach(UniqueFd sock, int timeout_ms = 5000);

  AddressSpace(const AddressSpace&) = delete;
  AddressSpace& operator=(const AddressSpace&) = delete;
  ~AddressSpace();

  // Maps [fd_offset, fd_offset+size) of fd (dup'ed; the caller keeps its own) at guest address start.
  Result<void> add_region(GuestAddress start, uint64_t size, int fd, uint64_t fd_offset);
  // Removes the region that starts at start; returns once no access uses it here or in any peer.
  Result<void> remove_region(GuestAddress start);
  std::vector<wire::RegionDesc> regions() const;
  uint64_t generation() const;

  // Sends the region table and its fds on sock (SOCK_SEQPACKET) and keeps sock to tell that peer of
  // later changes. peer_timeout_ms bounds how long a change waits for the peer's acknowledgement;
  // a peer that does not answer in time is dropped (counted in peer_errors) and is told nothing more.
  // EOPNOTSUPP for an untracked space.
  Result<void> export_to(UniqueFd sock, int peer_timeout_ms = 5000);
  // The attached side: waits up to timeout_ms for one change from the exporter, applies it and
  // acknowledges it. ECONNRESET once the exporter has closed the socket.
  Result<void> serve_peer(int timeout_ms);
  // The socket of the exporter, for an event loop to wait on (attached spaces only; -1 otherwise).
  int peer_fd() const;

  // The region addr lies in, and how many bytes from addr to that region's end; EFAULT outside.
  Result<Translation> translate(GuestAddress addr) const;
  // Checked accesses. An access that crosses regions is split; one with any byte outside every
  // region fails with EFAULT and touches nothing.
  Result<void> read(GuestAddress addr, std::span<uint8_t> out) const;
  Result<void> write(GuestAddress addr, std::span<const uint8_t> in) const;
  // Guest to guest, through a bounce buffer when the two ranges overlap.
  Result<void> copy(GuestAddress dst, GuestAddress src, uint64_t len) const;
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
  // Atomic loads and stores of naturally aligned words, with the caller's memory order (EINVAL when
  // misaligned, as GuestSlice).
  template <GuestAtomicWord T>
  Result<T> load(GuestAddress addr, std::memory_order o) const;
  template <GuestAtomicWord T>
  Result<void> store(GuestAddress addr, T v, std::memory_order o) const;
  // A pinned view of [addr, addr+len), which must lie inside one region.
  Result<MappedView> map(GuestAddress addr, uint64_t len) const;
  // Every region of the current snapshot pinned at once, as the fixed table a GuestMemory is: what
  // code written against one (the virtio queues and devices) binds to. Like a MappedView it keeps
  // each mapping, and so each host address it hands out (io_vectors), valid until it is destroyed,
  // whatever is removed meanwhile; the holder takes a new pin after a change. Writes through it are
  // not marked in this space's log (a vhost-user backend's space is untracked: its device reports
  // its writes in vhost's own log).
  // An empty space pins an empty table.
  GuestMemory pin() const;

  AddressSpaceStats stats() const;

  // Dirty tracking, for snapshots and live migration. Every write through the space (write,
  // write_obj, store, copy, a released view), in this process or an attached one, sets its pages'
  // bits in the shared log after the bytes land. collect_dirty takes and clears them, region by
  // region: a page written once appears in exactly one collection. KVM's own log of the guest's
  // writes is merged by the VM (per slot), not here.
  std::vector<DirtyRegion> collect_dirty();

 private:
  explicit AddressSpace(UniqueFd log_fd);
  class Access;  // one access's epoch guard, snapshot and thread cache (address_space.cpp)
  friend class Access;

  std::shared_ptr<as_detail::ReaderSlot> register_slot_shared() const;
  // log_offset: where the exporter put the region's bitmap (attached spaces); nullopt allocates one.
  Result<void> add_locked(GuestAddress start, uint64_t size, int fd, uint64_t fd_offset, std::optional<uint64_t> log_offset);
  Result<void> remove_locked(GuestAddress start);
  // Publishes a snapshot of these regions and returns once no access uses the ones it replaces.
  void publish(std::vector<std::shared_ptr<const as_detail::Mapping>> regions);
  Result<void> tell_peers(const wire::Message& m, std::span<const int> fds);

  const uint64_t id_;  // distinguishes spaces in the threads' caches, whatever their addresses
  std::atomic<const as_detail::Snapshot*> current_{nullptr};
  std::atomic<uint64_t> generation_{0};

  mutable std::mutex writer_mu_;  // add/remove/export, one at a time; never taken by an access
  mutable std::mutex slots_mu_;
  mutable std::vector<std::shared_ptr<as_detail::ReaderSlot>> slots_;  // slots_mu_
  std::vector<std::unique_ptr<as_detail::Peer>> peers_;               // writer_mu_
  UniqueFd exporter_;                                                  // attached spaces
  UniqueFd log_fd_;                                                    // the dirty log
  uint64_t log_next_ = 0;                                              // writer_mu_: its next free byte

  mutable uint64_t pruned_hits_ = 0, pruned_misses_ = 0, pruned_faults_ = 0;  // slots_mu_: exited threads
  std::atomic<uint64_t> peer_errors_{0};
};

}  // namespace evmm
