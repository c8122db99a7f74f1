#include "event/io_event_registry.h"

#include <sys/eventfd.h>

#include <algorithm>
#include <bit>
#include <cstdlib>
#include <cstring>
#include <map>
#include <mutex>
#include <thread>
#include <vector>

#include "base/log.h"
#include "kvm/vm_fd.h"

namespace evmm {

static_assert(std::endian::native == std::endian::little, "datamatch compares little-endian guest data");

namespace detail {
namespace {

// One registration as the dispatch path sees it: plain data, so a snapshot copies cheaply.
struct Item {
  uint64_t addr;
  uint64_t datamatch;
  uint64_t id;
  int fd;  // kept open by the Record's EventFd until no dispatch can still use this item
  uint8_t len;
  bool wildcard;
};

// Immutable once published. Per space, sorted by (addr, id): a group is a run of equal addr.
struct Snapshot {
  std::vector<Item> items[2];
};

struct Record {
  IoSpace space;
  Item item;
  std::shared_ptr<const EventFd> eventfd;
  bool in_kernel = false;
};

size_t index(IoSpace s) { return s == IoSpace::Pio ? 0 : 1; }
const char* name(IoSpace s) { return s == IoSpace::Pio ? "PIO" : "MMIO"; }
// The bytes a group occupies for the overlap rule; a length-0 group matches on its address alone.
uint64_t footprint(uint8_t len) { return len ? len : 1; }

std::pair<std::vector<Item>::const_iterator, std::vector<Item>::const_iterator> group_of(const std::vector<Item>& v,
                                                                                        uint64_t addr) {
  auto lo = std::lower_bound(v.begin(), v.end(), addr, [](const Item& i, uint64_t a) { return i.addr < a; });
  auto hi = std::find_if(lo, v.end(), [&](const Item& i) { return i.addr != addr; });
  return {lo, hi};
}

struct alignas(64) ReaderCount {
  std::atomic<int64_t> n{0};
};

}  // namespace

// Readers (dispatch) never lock. A writer publishes a new snapshot, then waits until every reader
// that could still hold the old one has left: readers count themselves in one of two slots chosen
// by the epoch's low bit, and the writer flips the epoch and drains each slot in turn. A reader
// that entered before the publish is counted in a slot the writer then sees non-zero, so once both
// slots have drained after the publish no one holds the old snapshot (all operations seq_cst).
// This is the grace period that seed 001 asks of deassign: once it returns, no signal.
struct IoEventState {
  IoEventState(const VmFd* v, IoEventRegistry::Options o) : vm(v), opts(o), owned(std::make_unique<Snapshot>()) {
    current.store(owned.get());
  }
  ~IoEventState();

  Result<uint64_t> add(IoSpace space, uint64_t addr, uint8_t len, IoMatch match, std::shared_ptr<const EventFd> efd);
  Result<void> remove(uint64_t id);

  void publish(std::unique_ptr<Snapshot> next);
  void synchronize();
  void sync_kernel(IoSpace space, uint64_t addr);
  Result<void> kernel(const Record& r, bool deassign) const;

  const VmFd* vm;
  IoEventRegistry::Options opts;
  std::atomic<const Snapshot*> current{nullptr};
  std::atomic<uint64_t> epoch{0};
  ReaderCount readers[2];

  std::mutex mu;  // serialises writers; guards everything below
  std::unique_ptr<Snapshot> owned;
  std::map<uint64_t, Record> records;  // by id
  uint64_t next_id = 1;
  size_t in_kernel = 0;
};

IoEventState::~IoEventState() {
  for (auto& [id, r] : records)
    if (r.in_kernel)
      if (auto k = kernel(r, true); !k) LOG_WARN("ioeventfd teardown: {}", k.error().message());
}

Result<void> IoEventState::kernel(const Record& r, bool deassign) const {
  kvm_ioeventfd req{};
  req.addr = r.item.addr;
  req.len = r.item.len;
  req.fd = r.item.fd;
  req.datamatch = r.item.wildcard ? 0 : r.item.datamatch;
  req.flags = (r.item.wildcard ? 0 : KVM_IOEVENTFD_FLAG_DATAMATCH) | (r.space == IoSpace::Pio ? KVM_IOEVENTFD_FLAG_PIO : 0) |
              (deassign ? KVM_IOEVENTFD_FLAG_DEASSIGN : 0);
  return vm->ioeventfd(req);
}

void IoEventState::synchronize() {
  for (int pass = 0; pass < 2; ++pass) {
    uint64_t old = epoch.fetch_add(1);
    while (readers[old & 1].n.load() != 0) std::this_thread::yield();
  }
}

void IoEventState::publish(std::unique_ptr<Snapshot> next) {
  current.store(next.get());
  synchronize();
  owned = std::move(next);  // frees the old snapshot: no reader can hold it any more
}

// The kernel refuses two ioeventfds on one address when either has length 0, either is a wildcard,
// or both match the same value (ioeventfd_check_collision), whatever their eventfds. A group it can
// hold goes into it; a group it cannot hold leaves it entirely, because a write the kernel consumed
// for one item would never reach the others in userspace.
void IoEventState::sync_kernel(IoSpace space, uint64_t addr) {
  if (!vm) return;
  auto [lo, hi] = group_of(owned->items[index(space)], addr);
  bool fits = hi - lo == 1;
  if (!fits && lo != hi && lo->len != 0) {
    std::vector<uint64_t> values;
    fits = true;
    for (auto it = lo; it != hi && fits; ++it) {
      fits = !it->wildcard && std::find(values.begin(), values.end(), it->datamatch) == values.end();
      values.push_back(it->datamatch);
    }
  }
  for (auto it = lo; it != hi; ++it) {
    auto rec = records.find(it->id);
    if (rec == records.end()) std::abort();  // every item has its record: a broken invariant
    Record& r = rec->second;
    if (fits == r.in_kernel) continue;
    if (auto k = kernel(r, !fits); !k) {
      // Only KVM's own limit (ENOSPC, 1000 devices a bus) is expected here; userspace covers it.
      LOG_DEBUG("ioeventfd {} {:#x}: {}", name(space), addr, k.error().message());
      if (fits) continue;
    }
    r.in_kernel = fits;
    in_kernel += fits ? 1 : -1;
  }
}

Result<uint64_t> IoEventState::add(IoSpace space, uint64_t addr, uint8_t len, IoMatch match,
                                   std::shared_ptr<const EventFd> efd) {
  const char* sp = name(space);
  if (!efd) return make_error(EBADF, "ioeventfd {} {:#x}: no eventfd", sp, addr);
  if (len != 0 && len != 1 && len != 2 && len != 4 && len != 8)
    return make_error(EINVAL, "ioeventfd {} {:#x}: bad length {}: must be 1, 2, 4 or 8 (or 0 for MMIO)", sp, addr, len);
  if (len == 0 && space == IoSpace::Pio)
    return make_error(EINVAL, "ioeventfd PIO {:#x}: bad length 0: any-length registration is MMIO only", addr);
  if (len == 0 && !match.wildcard)
    return make_error(EINVAL, "ioeventfd MMIO {:#x}: bad length 0 for a datamatch: a value needs a length", addr);
  if (!match.wildcard && len < 8 && (match.datamatch >> (8 * len)) != 0)
    return make_error(EINVAL, "ioeventfd {} {:#x}: datamatch value {:#x} is wider than the length {}", sp, addr,
                      match.datamatch, len);
  uint64_t end = addr + footprint(len);
  if (end < addr || (space == IoSpace::Pio && end > 0x10000))
    return make_error(EINVAL, "ioeventfd {} {:#x}: bad address: range of length {} leaves the address space", sp, addr,
                      len);

  std::lock_guard lock(mu);
  const auto& items = owned->items[index(space)];
  auto [lo, hi] = group_of(items, addr);
  if (lo != hi && lo->len != len)
    return make_error(EINVAL, "ioeventfd {} {:#x}: length mismatch: the group there has length {}, not {}", sp, addr,
                      lo->len, len);
  for (auto it = lo; it != hi; ++it)
    if (it->fd == efd->fd() && it->wildcard == match.wildcard && (match.wildcard || it->datamatch == match.datamatch))
      return make_error(EEXIST, "ioeventfd {} {:#x}: this eventfd is already registered with the same match", sp, addr);
  if (lo == hi) {
    // Groups never overlap, so only the neighbours on either side can.
    if (lo != items.begin()) {
      const Item& prev = *std::prev(lo);
      if (prev.addr + footprint(prev.len) > addr)
        return make_error(EADDRINUSE, "ioeventfd {} {:#x}+{}: overlaps the group at {:#x}+{}", sp, addr, len, prev.addr,
                          prev.len);
    }
    if (hi != items.end() && end > hi->addr)
      return make_error(EADDRINUSE, "ioeventfd {} {:#x}+{}: overlaps the group at {:#x}+{}", sp, addr, len, hi->addr,
                        hi->len);
  }
  if (records.size() >= opts.max_registrations)
    return make_error(ENOSPC, "ioeventfd {} {:#x}: registration limit of {} reached", sp, addr, opts.max_registrations);

  uint64_t id = next_id++;
  Item item{addr, match.wildcard ? 0 : match.datamatch, id, efd->fd(), len, match.wildcard};
  auto next = std::make_unique<Snapshot>(*owned);
  auto& v = next->items[index(space)];
  v.insert(v.begin() + (hi - items.begin()), item);  // ids grow, so the end of the group keeps the order
  records.emplace(id, Record{space, item, std::move(efd)});
  publish(std::move(next));
  sync_kernel(space, addr);
  return id;
}

Result<void> IoEventState::remove(uint64_t id) {
  std::lock_guard lock(mu);
  auto rec = records.find(id);
  if (rec == records.end()) return make_error(ENOENT, "ioeventfd: deregistering a registration that is not registered");
  Record& r = rec->second;
  // KVM's deassign waits for its own readers (SRCU), so the kernel side is quiet once it returns.
  if (r.in_kernel) {
    if (auto k = kernel(r, true); !k) LOG_WARN("ioeventfd {} {:#x}: {}", name(r.space), r.item.addr, k.error().message());
    --in_kernel;
  }
  auto next = std::make_unique<Snapshot>(*owned);
  auto& v = next->items[index(r.space)];
  v.erase(std::find_if(v.begin(), v.end(), [&](const Item& i) { return i.id == id; }));
  publish(std::move(next));
  IoSpace space = r.space;
  uint64_t addr = r.item.addr;
  records.erase(rec);  // closes our hold on the eventfd only now that no dispatch can use it
  sync_kernel(space, addr);
  return {};
}

}  // namespace detail

IoEventRegistration& IoEventRegistration::operator=(IoEventRegistration&& o) noexcept {
  if (this != &o) {
    if (active()) (void)release();
    state_ = std::move(o.state_);
    id_ = std::exchange(o.id_, 0);
  }
  return *this;
}

IoEventRegistration::~IoEventRegistration() {
  if (!active()) return;
  // ENOENT here only means the registry went first, which took the registration with it.
  if (auto r = release(); !r && r.error().code() != ENOENT) LOG_WARN("{}", r.error().message());
}

Result<void> IoEventRegistration::release() {
  uint64_t id = std::exchange(id_, 0);
  auto st = std::exchange(state_, {}).lock();
  if (id == 0 || !st)
    return make_error(ENOENT, "ioeventfd: deregistering a registration that is not registered "
                              "(already released, moved from, or its registry is gone)");
  return st->remove(id);
}

IoEventRegistry::IoEventRegistry(const VmFd* vm, Options opts)
    : state_(std::make_shared<detail::IoEventState>(vm, opts)) {}

IoEventRegistry::~IoEventRegistry() = default;

Result<IoEventRegistration> IoEventRegistry::add(IoSpace space, uint64_t addr, uint8_t len, IoMatch match,
                                                 std::shared_ptr<const EventFd> eventfd) {
  uint64_t id = TRY(state_->add(space, addr, len, match, std::move(eventfd)));
  return IoEventRegistration(state_, id);
}

bool IoEventRegistry::dispatch_write(IoSpace space, uint64_t addr, std::span<const uint8_t> data) const {
  if (data.empty() || data.size() > 8) return false;
  detail::IoEventState& st = *state_;
  auto& slot = st.readers[st.epoch.load() & 1].n;
  slot.fetch_add(1);
  const auto& items = st.current.load()->items[detail::index(space)];
  auto it = std::lower_bound(items.begin(), items.end(), addr,
                             [](const detail::Item& i, uint64_t a) { return i.addr < a; });
  // memcpy: the data need not be aligned (seed 001); the value is the low data.size() bytes.
  uint64_t value = 0;
  std::memcpy(&value, data.data(), data.size());
  bool hit = false;
  for (; it != items.end() && it->addr == addr; ++it) {
    if (it->len != 0 && (it->len != data.size() || (!it->wildcard && it->datamatch != value))) continue;
    // A full counter (EAGAIN) already tells the reader there was an event, as in the kernel.
    (void)::eventfd_write(it->fd, 1);
    hit = true;
  }
  slot.fetch_sub(1);
  return hit;
}

IoEventStats IoEventRegistry::stats() const {
  std::lock_guard lock(state_->mu);
  return {state_->records.size(), state_->in_kernel};
}

}  // namespace evmm
