#include "memory/address_space.h"

#include <fcntl.h>
#include <sched.h>
#include <sys/mman.h>
#include <sys/socket.h>
#include <sys/stat.h>

#include <algorithm>
#include <array>
#include <optional>
#include <cstring>

#include "base/log.h"

namespace evmm {

namespace as_detail {

// One region's mapping; unmapped when the last snapshot or view holding it lets go.
struct Mapping {
  GuestAddress start;
  uint64_t size;
  uint64_t fd_offset;
  UniqueFd fd;
  uint8_t* host;
  uint64_t log_offset;
  uint64_t* log;  // the region's dirty bitmap, mapped from the space's log fd: bit i is page i

  Mapping(GuestAddress s, uint64_t n, uint64_t off, UniqueFd f, uint8_t* h, uint64_t loff, uint64_t* l)
      : start(s), size(n), fd_offset(off), fd(std::move(f)), host(h), log_offset(loff), log(l) {}
  Mapping(const Mapping&) = delete;
  Mapping& operator=(const Mapping&) = delete;
  ~Mapping() {
    ::munmap(host, size);
    if (log) ::munmap(log, wire::log_bytes(size));
  }
  // Marks the pages of [off, off+len) dirty, after the bytes were written (release: a collector that
  // sees the bit sees the bytes).
  void mark_dirty(uint64_t off, uint64_t len) const {
    if (!len || !log) return;  // an untracked space
    const uint64_t first = off / wire::kPageSize, last = (off + len - 1) / wire::kPageSize;
    for (uint64_t w = first / 64; w <= last / 64; ++w) {
      const uint64_t lo = w == first / 64 ? first % 64 : 0, hi = w == last / 64 ? last % 64 : 63;
      const uint64_t bits = (hi == 63 ? ~0ull : (2ull << hi) - 1) & ~((1ull << lo) - 1);
      // Always the read-modify-write, even when the bits look set: skipping it on a plain load could let
      // a collector clear them and copy the page before this thread's writes are visible.
      std::atomic_ref<uint64_t>(log[w]).fetch_or(bits, std::memory_order_release);
    }
  }
  GuestAddress end() const { return start + size; }
  bool contains(GuestAddress a, uint64_t len) const { return a >= start && a - start <= size && len <= size - (a - start); }
};

struct Snapshot {
  uint64_t generation;
  std::vector<std::shared_ptr<const Mapping>> regions;  // sorted by start, disjoint

  // The region holding addr, or nullptr: O(log n).
  const Mapping* find(GuestAddress addr) const {
    auto it = std::upper_bound(regions.begin(), regions.end(), addr, [](GuestAddress a, const auto& m) { return a < m->start; });
    if (it == regions.begin()) return nullptr;
    const Mapping* m = std::prev(it)->get();
    return addr - m->start < m->size ? m : nullptr;
  }
};

// A thread's presence in one space: the generation its current access entered under (0 between
// accesses), and its counters, written by that thread only.
struct alignas(64) ReaderSlot {
  std::atomic<uint64_t> active{0};
  std::atomic<uint64_t> hits{0}, misses{0}, faults{0};
  std::atomic<bool> orphaned{false};  // its thread exited or dropped it from its cache

  static void bump(std::atomic<uint64_t>& c) { c.store(c.load(std::memory_order_relaxed) + 1, std::memory_order_relaxed); }
};

struct Peer {
  UniqueFd sock;
  int timeout_ms;
};

namespace {

std::atomic<uint64_t> next_space_id{1};

// Each thread's cache: for the last few spaces it touched, its slot there and the region it last
// used under the generation it saw. Entries of spaces that are gone are never matched again (ids are
// never reused) and are overwritten in turn.
struct ThreadCache {
  struct Entry {
    uint64_t space_id = 0;
    std::shared_ptr<ReaderSlot> slot;
    uint64_t generation = 0;
    const Mapping* last = nullptr;
  };
  std::array<Entry, 4> entries;
  unsigned next = 0;

  ~ThreadCache() {
    for (auto& e : entries)
      if (e.slot) e.slot->orphaned.store(true, std::memory_order_release);
  }
};
thread_local ThreadCache tls_cache;

}  // namespace
}  // namespace as_detail

using as_detail::Mapping;
using as_detail::ReaderSlot;
using as_detail::Snapshot;

// One access: announces its epoch in the thread's slot, holds the snapshot it read, and clears the
// slot when it ends. Writers wait for every slot that announced an older generation (publish).
class AddressSpace::Access {
 public:
  explicit Access(const AddressSpace& as) {
    auto& cache = as_detail::tls_cache;
    for (auto& e : cache.entries)
      if (e.space_id == as.id_) entry_ = &e;
    if (!entry_) {
      entry_ = &cache.entries[cache.next++ % cache.entries.size()];
      if (entry_->slot) entry_->slot->orphaned.store(true, std::memory_order_release);
      *entry_ = {as.id_, std::shared_ptr<ReaderSlot>(), 0, nullptr};
      entry_->slot = as.register_slot_shared();
    }
    slot_ = entry_->slot.get();
    // Dekker with publish(): the slot's store is ordered before the snapshot's load, and the
    // writer's snapshot store before its load of the slot, so one of the two sees the other.
    slot_->active.store(as.generation_.load(std::memory_order_seq_cst), std::memory_order_seq_cst);
    snap_ = as.current_.load(std::memory_order_seq_cst);
  }
  ~Access() { slot_->active.store(0, std::memory_order_release); }
  Access(const Access&) = delete;
  Access& operator=(const Access&) = delete;

  const Snapshot& snapshot() const { return *snap_; }

  // The region holding all of [addr, addr+len), through the thread's cache; counts a fault if none.
  const Mapping* region(GuestAddress addr, uint64_t len) {
    if (entry_->generation == snap_->generation && entry_->last && entry_->last->contains(addr, len)) {
      ReaderSlot::bump(slot_->hits);
      return entry_->last;
    }
    ReaderSlot::bump(slot_->misses);
    const Mapping* m = snap_->find(addr);
    if (m) {
      entry_->generation = snap_->generation;
      entry_->last = m;
    }
    if (!m || !m->contains(addr, len)) return nullptr;
    return m;
  }
  // The region holding addr, without the whole-length check (for split accesses).
  const Mapping* region_at(GuestAddress addr) { return region(addr, 1); }
  void fault() { ReaderSlot::bump(slot_->faults); }

 private:
  as_detail::ThreadCache::Entry* entry_ = nullptr;
  ReaderSlot* slot_ = nullptr;
  const Snapshot* snap_ = nullptr;
};

namespace {

// fn(region, offset in it, bytes, offset into the access) for each region piece of [addr, addr+len),
// once every byte is known to be backed; EFAULT and no call otherwise.
template <typename A, typename Fn>
Result<void> for_each_piece(A& a, GuestAddress addr, uint64_t len, Fn&& fn) {
  if (!len) return {};
  if (const Mapping* m = a.region(addr, len)) {
    fn(*m, addr - m->start, len, uint64_t{0});
    return {};
  }
  if (!addr.checked_add(len)) {
    a.fault();
    return make_error(EFAULT, "guest access at {} of {} bytes wraps", addr, len);
  }
  for (uint64_t done = 0; done < len;) {
    const Mapping* m = a.region_at(addr + done);
    if (!m) {
      a.fault();
      return make_error(EFAULT, "guest access at {} of {} bytes: {} is outside every region", addr, len, addr + done);
    }
    done += std::min(len - done, m->end() - (addr + done));
  }
  for (uint64_t done = 0; done < len;) {
    const Mapping* m = a.region_at(addr + done);
    uint64_t n = std::min(len - done, m->end() - (addr + done));
    fn(*m, addr + done - m->start, n, done);
    done += n;
  }
  return {};
}

}  // namespace

AddressSpace::AddressSpace(UniqueFd log_fd) : id_(as_detail::next_space_id.fetch_add(1)), log_fd_(std::move(log_fd)) {
  auto empty = std::make_unique<Snapshot>(Snapshot{1, {}});
  current_.store(empty.release());
  generation_.store(1);
}

AddressSpace::~AddressSpace() {
  // No access may be running: the owner destroys the space after its users.
  delete current_.load();
}

Result<std::unique_ptr<AddressSpace>> AddressSpace::create(DirtyTracking tracking) {
  if (tracking == DirtyTracking::Off) return std::unique_ptr<AddressSpace>(new AddressSpace(UniqueFd()));
  int log = ::memfd_create("evmm-dirty-log", MFD_CLOEXEC);
  if (log < 0) return errno_error("address space: memfd_create for the dirty log");
  return std::unique_ptr<AddressSpace>(new AddressSpace(UniqueFd(log)));
}

std::shared_ptr<ReaderSlot> AddressSpace::register_slot_shared() const {
  auto slot = std::make_shared<ReaderSlot>();
  std::lock_guard lock(slots_mu_);
  // Slots of exited threads go, their counts kept; the orphaned flag is set between accesses only.
  std::erase_if(slots_, [&](const std::shared_ptr<ReaderSlot>& s) {
    if (!s->orphaned.load(std::memory_order_acquire)) return false;
    pruned_hits_ += s->hits.load(std::memory_order_relaxed);
    pruned_misses_ += s->misses.load(std::memory_order_relaxed);
    pruned_faults_ += s->faults.load(std::memory_order_relaxed);
    return true;
  });
  slots_.push_back(slot);
  return slot;
}

void AddressSpace::publish(std::vector<std::shared_ptr<const Mapping>> regions) {
  const Snapshot* old = current_.load(std::memory_order_relaxed);
  const uint64_t gen = old->generation + 1;
  auto next = std::make_unique<Snapshot>(Snapshot{gen, std::move(regions)});
  current_.store(next.release(), std::memory_order_seq_cst);
  generation_.store(gen, std::memory_order_seq_cst);
  // Wait out every access that may hold the old snapshot: a slot that announced an older generation.
  std::vector<std::shared_ptr<ReaderSlot>> slots;
  {
    std::lock_guard lock(slots_mu_);
    slots = slots_;
  }
  for (const auto& s : slots) {
    for (unsigned spins = 0;; ++spins) {
      uint64_t a = s->active.load(std::memory_order_seq_cst);
      if (a == 0 || a >= gen) break;
      if (spins > 64) ::sched_yield();
    }
  }
  delete old;  // drops its references: a region no newer snapshot or view holds is unmapped here
}

namespace {

Result<void> check_region_fd(int fd, uint64_t size, uint64_t fd_offset) {
  if (fd < 0 || ::fcntl(fd, F_GETFD) < 0) return make_error(EBADF, "address space: fd {} is not open", fd);
  struct stat st;
  if (::fstat(fd, &st) < 0) return errno_error("address space: fstat fd {}", fd);
  if (!S_ISREG(st.st_mode))
    return make_error(ENODEV, "address space: fd {} is not a memfd or regular file (mode {:#o})", fd, st.st_mode & S_IFMT);
  uint64_t end;
  if (__builtin_add_overflow(fd_offset, size, &end) || end > uint64_t(st.st_size))
    return make_error(ERANGE, "address space: fd {} has {} bytes, the region needs {:#x}+{:#x}", fd, st.st_size, fd_offset, size);
  return {};
}

}  // namespace

Result<void> AddressSpace::add_locked(GuestAddress start, uint64_t size, int fd, uint64_t fd_offset,
                                      std::optional<uint64_t> log_offset) {
  if (!size || size % wire::kPageSize || start.raw() % wire::kPageSize || fd_offset % wire::kPageSize)
    return make_error(EINVAL, "address space: region {}+{:#x} at fd offset {:#x} is empty or not page-aligned", start, size, fd_offset);
  if (!start.checked_add(size)) return make_error(EINVAL, "address space: region {}+{:#x} wraps", start, size);
  TRY(check_region_fd(fd, size, fd_offset));
  // The exporter gives each region a fresh part of the log (never reused: a pinned view released after
  // its region's removal still marks there); an attached space maps the part the exporter chose.
  const bool tracked = log_fd_.valid();
  const uint64_t log_len = tracked ? wire::log_bytes(size) : 0;
  const uint64_t log_off = log_offset.value_or(log_next_);
  if (!tracked) {
    // no log to grow or map
  } else if (log_offset) {
    TRY_CTX(check_region_fd(log_fd_.get(), log_len, log_off), "the dirty log");
  } else if (::ftruncate(log_fd_.get(), off_t(log_next_ + log_len)) < 0) {
    return errno_error("address space: growing the dirty log to {} bytes", log_next_ + log_len);
  }
  const Snapshot* cur = current_.load(std::memory_order_relaxed);
  for (const auto& m : cur->regions)
    if (start < m->end() && m->start < start + size)
      return make_error(EEXIST, "address space: region {}+{:#x} overlaps {}+{:#x}", start, size, m->start, m->size);
  int dup = ::fcntl(fd, F_DUPFD_CLOEXEC, 0);
  if (dup < 0) return errno_error("address space: dup fd {}", fd);
  UniqueFd own(dup);
  void* log = tracked ? ::mmap(nullptr, log_len, PROT_READ | PROT_WRITE, MAP_SHARED, log_fd_.get(), off_t(log_off)) : nullptr;
  if (log == MAP_FAILED) return errno_error("address space: mmap the dirty log at {:#x}", log_off);
  void* p = ::mmap(nullptr, size, PROT_READ | PROT_WRITE, MAP_SHARED | MAP_NORESERVE, dup, off_t(fd_offset));
  if (p == MAP_FAILED) {
    auto err = errno_error("address space: mmap {:#x} bytes of fd {} at {:#x}", size, fd, fd_offset);
    if (log) ::munmap(log, log_len);
    return err;
  }
  ::madvise(p, size, MADV_DONTDUMP);
  if (!log_offset) log_next_ += log_len;
  auto regions = cur->regions;
  regions.push_back(std::make_shared<const Mapping>(start, size, fd_offset, std::move(own), static_cast<uint8_t*>(p), log_off,
                                                    static_cast<uint64_t*>(log)));
  std::sort(regions.begin(), regions.end(), [](const auto& a, const auto& b) { return a->start < b->start; });
  publish(std::move(regions));
  return {};
}

Result<void> AddressSpace::remove_locked(GuestAddress start) {
  const Snapshot* cur = current_.load(std::memory_order_relaxed);
  auto regions = cur->regions;
  auto it = std::find_if(regions.begin(), regions.end(), [&](const auto& m) { return m->start == start; });
  if (it == regions.end()) return make_error(ENOENT, "address space: no region starts at {}", start);
  regions.erase(it);
  publish(std::move(regions));
  return {};
}

Result<void> AddressSpace::add_region(GuestAddress start, uint64_t size, int fd, uint64_t fd_offset) {
  std::lock_guard lock(writer_mu_);
  TRY(add_locked(start, size, fd, fd_offset, std::nullopt));
  const uint64_t log_off = current_.load(std::memory_order_relaxed)->find(start)->log_offset;
  int fds[] = {fd};
  return tell_peers({wire::MsgType::Add, generation(), {{start, size, fd_offset, log_off}}}, fds);
}

Result<void> AddressSpace::remove_region(GuestAddress start) {
  std::lock_guard lock(writer_mu_);
  const Snapshot* cur = current_.load(std::memory_order_relaxed);
  const Mapping* m = cur->find(start);
  wire::RegionDesc desc{start, m ? m->size : 0, m ? m->fd_offset : 0};
  TRY(remove_locked(start));
  return tell_peers({wire::MsgType::Remove, generation(), {desc}}, {});
}

std::vector<wire::RegionDesc> AddressSpace::regions() const {
  std::lock_guard lock(writer_mu_);
  std::vector<wire::RegionDesc> out;
  for (const auto& m : current_.load()->regions) out.push_back({m->start, m->size, m->fd_offset, m->log_offset});
  return out;
}

uint64_t AddressSpace::generation() const { return generation_.load(std::memory_order_acquire); }

Result<void> AddressSpace::tell_peers(const wire::Message& m, std::span<const int> fds) {
  std::string failures;
  std::erase_if(peers_, [&](const std::unique_ptr<as_detail::Peer>& p) {
    auto told = [&]() -> Result<void> {
      TRY(wire::send_message(p->sock.get(), m, fds));
      auto ack = TRY(wire::receive_message(p->sock.get(), p->timeout_ms));
      if (ack.msg.type != wire::MsgType::Ack || ack.msg.generation != m.generation)
        return make_error(EPROTO, "peer answered type {} for generation {}, expected an acknowledgement of {}",
                          static_cast<unsigned>(ack.msg.type), ack.msg.generation, m.generation);
      return {};
    }();
    if (told) return false;
    peer_errors_.fetch_add(1, std::memory_order_relaxed);
    failures += fmt::format("{}{}", failures.empty() ? "" : "; ", told.error().message());
    return true;
  });
  if (failures.empty()) return {};
  // The change is made here; the peer is disconnected, but its process may still map the region
  // until it exits, so the caller must not reuse that part of the fd before then.
  return make_error(ECONNABORTED, "address space: changed here, but a peer was dropped without acknowledging: {}", failures);
}

Result<void> AddressSpace::export_to(UniqueFd sock, int peer_timeout_ms) {
  int type = 0;
  socklen_t len = sizeof type;
  if (::getsockopt(sock.get(), SOL_SOCKET, SO_TYPE, &type, &len) < 0) return errno_error("address space: export socket");
  if (type != SOCK_SEQPACKET) return make_error(EPROTOTYPE, "address space: export needs a SOCK_SEQPACKET socket");
  if (!log_fd_.valid()) return make_error(EOPNOTSUPP, "address space: an untracked space has no log to share with a peer");
  std::lock_guard lock(writer_mu_);
  const Snapshot* cur = current_.load(std::memory_order_relaxed);
  wire::Message m{wire::MsgType::Table, cur->generation, {}};
  std::vector<int> fds;
  for (const auto& r : cur->regions) {
    m.regions.push_back({r->start, r->size, r->fd_offset, r->log_offset});
    fds.push_back(r->fd.get());
  }
  fds.push_back(log_fd_.get());
  TRY(wire::send_message(sock.get(), m, fds));
  peers_.push_back(std::make_unique<as_detail::Peer>(as_detail::Peer{std::move(sock), peer_timeout_ms}));
  return {};
}

Result<std::unique_ptr<AddressSpace>> AddressSpace::attach(UniqueFd sock, int timeout_ms) {
  auto got = TRY_CTX(wire::receive_message(sock.get(), timeout_ms), "attaching an address space");
  if (got.msg.type != wire::MsgType::Table)
    return make_error(EPROTO, "attaching an address space: the first message has type {}, not a region table",
                      static_cast<unsigned>(got.msg.type));
  // The log fd came last; it must be a file, as the regions' fds (check_region_fd, per region).
  auto space = std::unique_ptr<AddressSpace>(new AddressSpace(std::move(got.fds.back())));
  std::lock_guard lock(space->writer_mu_);
  for (size_t i = 0; i < got.msg.regions.size(); ++i) {
    const auto& r = got.msg.regions[i];
    TRY_CTX(space->add_locked(r.start, r.size, got.fds[i].get(), r.fd_offset, r.log_offset), "attaching an address space");
  }
  space->exporter_ = std::move(sock);
  return space;
}

Result<void> AddressSpace::serve_peer(int timeout_ms) {
  std::lock_guard lock(writer_mu_);
  if (!exporter_.valid()) return make_error(ENOTCONN, "address space: not attached to an exporter");
  auto got = TRY(wire::receive_message(exporter_.get(), timeout_ms));
  const auto& r = got.msg.regions.empty() ? wire::RegionDesc{} : got.msg.regions[0];
  switch (got.msg.type) {
    case wire::MsgType::Add: TRY(add_locked(r.start, r.size, got.fds[0].get(), r.fd_offset, r.log_offset)); break;
    case wire::MsgType::Remove: TRY(remove_locked(r.start)); break;
    default:
      return make_error(EPROTO, "address space: the exporter sent type {} after the table", static_cast<unsigned>(got.msg.type));
  }
  return wire::send_message(exporter_.get(), {wire::MsgType::Ack, got.msg.generation, {}}, {});
}

int AddressSpace::peer_fd() const { return exporter_.get(); }

Result<Translation> AddressSpace::translate(GuestAddress addr) const {
  Access a(*this);
  const Mapping* m = a.region_at(addr);
  if (!m) {
    a.fault();
    return make_error(EFAULT, "guest address {} is outside every region", addr);
  }
  uint64_t off = addr - m->start;
  return Translation{m->start, off, m->fd_offset + off, m->size - off};
}

Result<void> AddressSpace::read(GuestAddress addr, std::span<uint8_t> out) const {
  Access a(*this);
  return for_each_piece(a, addr, out.size(), [&](const Mapping& m, uint64_t at, uint64_t n, uint64_t off) {
    std::memcpy(out.data() + off, m.host + at, n);
  });
}

Result<void> AddressSpace::write(GuestAddress addr, std::span<const uint8_t> in) const {
  Access a(*this);
  return for_each_piece(a, addr, in.size(), [&](const Mapping& m, uint64_t at, uint64_t n, uint64_t off) {
    std::memcpy(m.host + at, in.data() + off, n);
    m.mark_dirty(at, n);
  });
}

Result<void> AddressSpace::copy(GuestAddress dst, GuestAddress src, uint64_t len) const {
  // Through a bounce buffer, chunk by chunk, backwards when dst overlaps src from above (memmove's
  // rule). Both ranges are checked whole first, so a refused copy touches nothing.
  {
    Access a(*this);
    auto none = [](const Mapping&, uint64_t, uint64_t, uint64_t) {};
    TRY(for_each_piece(a, src, len, none));
    TRY(for_each_piece(a, dst, len, none));
  }
  constexpr uint64_t kChunk = 64 * 1024;
  std::vector<uint8_t> buf(std::min(len, kChunk));
  const bool backwards = dst > src && dst - src < len;
  for (uint64_t done = 0; done < len;) {
    uint64_t n = std::min(kChunk, len - done);
    uint64_t off = backwards ? len - done - n : done;
    std::span<uint8_t> b(buf.data(), n);
    TRY(read(src + off, b));
    TRY(write(dst + off, b));
    done += n;
  }
  return {};
}

template <GuestAtomicWord T>
Result<T> AddressSpace::load(GuestAddress addr, std::memory_order o) const {
  Access a(*this);
  const Mapping* m = a.region(addr, sizeof(T));
  if (!m) {
    a.fault();
    return make_error(EFAULT, "guest load of {} bytes at {} is outside every region", sizeof(T), addr);
  }
  return GuestSlice(m->host + (addr - m->start), sizeof(T)).load<T>(0, o);
}

template <GuestAtomicWord T>
Result<void> AddressSpace::store(GuestAddress addr, T v, std::memory_order o) const {
  Access a(*this);
  const Mapping* m = a.region(addr, sizeof(T));
  if (!m) {
    a.fault();
    return make_error(EFAULT, "guest store of {} bytes at {} is outside every region", sizeof(T), addr);
  }
  TRY(GuestSlice(m->host + (addr - m->start), sizeof(T)).store<T>(0, v, o));
  m->mark_dirty(addr - m->start, sizeof(T));
  return {};
}

template Result<uint8_t> AddressSpace::load<uint8_t>(GuestAddress, std::memory_order) const;
template Result<uint16_t> AddressSpace::load<uint16_t>(GuestAddress, std::memory_order) const;
template Result<uint32_t> AddressSpace::load<uint32_t>(GuestAddress, std::memory_order) const;
template Result<uint64_t> AddressSpace::load<uint64_t>(GuestAddress, std::memory_order) const;
template Result<void> AddressSpace::store<uint8_t>(GuestAddress, uint8_t, std::memory_order) const;
template Result<void> AddressSpace::store<uint16_t>(GuestAddress, uint16_t, std::memory_order) const;
template Result<void> AddressSpace::store<uint32_t>(GuestAddress, uint32_t, std::memory_order) const;
template Result<void> AddressSpace::store<uint64_t>(GuestAddress, uint64_t, std::memory_order) const;

Result<MappedView> AddressSpace::map(GuestAddress addr, uint64_t len) const {
  Access a(*this);
  const Mapping* m = a.region(addr, len);
  if (!m) {
    a.fault();
    return make_error(EFAULT, "guest view of {} bytes at {} does not lie inside one region", len, addr);
  }
  MappedView v;
  for (const auto& r : a.snapshot().regions)
    if (r.get() == m) v.mapping_ = r;
  v.slice_ = GuestSlice(m->host + (addr - m->start), len);
  v.addr_ = addr;
  v.offset_ = addr - m->start;
  return v;
}

MappedView::MappedView(MappedView&& o) noexcept
    : mapping_(std::move(o.mapping_)), slice_(std::exchange(o.slice_, GuestSlice())), addr_(o.addr_), offset_(o.offset_) {}

MappedView& MappedView::operator=(MappedView&& o) noexcept {
  if (this != &o) {
    release();
    mapping_ = std::move(o.mapping_);
    slice_ = std::exchange(o.slice_, GuestSlice());
    addr_ = o.addr_;
    offset_ = o.offset_;
  }
  return *this;
}

MappedView::~MappedView() { release(); }

void MappedView::release() {
  // Whatever was written through the view counts as written now (the issue's "at the latest when
  // the view is released"): every page it covers.
  if (mapping_) mapping_->mark_dirty(offset_, slice_.size());
  mapping_.reset();
  slice_ = GuestSlice();
}

GuestMemory AddressSpace::pin() const {
  std::lock_guard lock(writer_mu_);  // the snapshot cannot be replaced (and freed) while we copy it
  auto held = std::make_shared<std::vector<std::shared_ptr<const Mapping>>>(current_.load()->regions);
  std::vector<MemoryRegion> regions;
  for (const auto& m : *held) regions.push_back({m->start, m->size, RegionKind::Ram, m->host, m->fd_offset});
  GuestMemory mem(UniqueFd(), std::move(regions));
  mem.pins_ = std::move(held);
  return mem;
}

std::vector<DirtyRegion> AddressSpace::collect_dirty() {
  std::lock_guard lock(writer_mu_);
  std::vector<DirtyRegion> out;
  for (const auto& m : current_.load(std::memory_order_relaxed)->regions) {
    if (!m->log) continue;
    DirtyRegion d{m->start, m->size, std::vector<uint64_t>((m->size / wire::kPageSize + 63) / 64)};
    bool any = false;
    for (size_t w = 0; w < d.bitmap.size(); ++w) {
      // acquire: the bytes written before a bit was set are visible to whoever copies the page next.
      d.bitmap[w] = std::atomic_ref<uint64_t>(m->log[w]).exchange(0, std::memory_order_acquire);
      any |= d.bitmap[w] != 0;
    }
    if (any) out.push_back(std::move(d));
  }
  return out;
}

AddressSpaceStats AddressSpace::stats() const {
  AddressSpaceStats s{};
  {
    std::lock_guard lock(writer_mu_);
    const Snapshot* cur = current_.load();
    s.generation = cur->generation;
    s.regions = cur->regions.size();
    for (const auto& m : cur->regions) s.bytes += m->size;
  }
  std::lock_guard lock(slots_mu_);
  s.cache_hits = pruned_hits_;
  s.cache_misses = pruned_misses_;
  s.faults = pruned_faults_;
  for (const auto& slot : slots_) {
    s.cache_hits += slot->hits.load(std::memory_order_relaxed);
    s.cache_misses += slot->misses.load(std::memory_order_relaxed);
    s.faults += slot->faults.load(std::memory_order_relaxed);
  }
  s.peer_errors = peer_errors_.load(std::memory_order_relaxed);
  return s;
}

}  // namespace evmm
