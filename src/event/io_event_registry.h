// I/O events (ioeventfd, seed 001): a guest write to a PIO or MMIO address signals an eventfd.
//
// Registrations go into the kernel (KVM_IOEVENTFD) wherever the kernel accepts them, so a matching
// write never leaves KVM. The same table dispatches, with the kernel's semantics, every write that
// still reaches userspace: groups the kernel cannot hold, registrations beyond its device limit, and
// a registry built without a VM.
//
// Matching (virt/kvm/eventfd.c, ioeventfd_in_range): the write's address must equal the group's
// address; a group of length 0 (MMIO only) matches a write of any length; otherwise the write's length
// must equal the group's; a wildcard then matches, a datamatch compares the value, read as a
// little-endian integer of that length. Only writes are dispatched: reads always go to the device.
//
// Errors (each its own message; the errno is what a kernel interface would return):
//   EINVAL       length not 0/1/2/4/8; length 0 for PIO; datamatch with length 0 (the kernel refuses
//                it too); address range that wraps or a port above 0xffff
//   EINVAL       datamatch value wider than the length
//   EINVAL       length differs from the existing group at that address
//   EEXIST       the same (space, address, length, match, eventfd) is already registered
//   EADDRINUSE   the range overlaps a group at a different address; not EBUSY, which callers read
//                as "try again" (seed 001), while this is permanent until that group goes away
//   ENOENT       deregistering what is not registered (released, moved-from, or registry gone)
//   ENOSPC       Options::max_registrations (default kDefaultMaxRegistrations) reached
//   EBADF        no eventfd given
// A length-0 group occupies one byte ([addr, addr+1)) for the overlap rule: only its address matches.
#pragma once

#include <atomic>
#include <cstdint>
#include <memory>
#include <span>
#include <utility>

#include "base/eventfd.h"
#include "base/result.h"

namespace evmm {

class VmFd;

enum class IoSpace : uint8_t { Pio, Mmio };

// What a registration fires on: any write of the group's length (wildcard), or one value.
struct IoMatch {
  static IoMatch any() { return IoMatch{true, 0}; }
  static IoMatch value(uint64_t v) { return IoMatch{false, v}; }
  bool wildcard;
  uint64_t datamatch;
};

namespace detail {
struct IoEventState;
}

// A live registration: move-only; destroying it deregisters.
class IoEventRegistration {
 public:
  IoEventRegistration() = default;
  IoEventRegistration(IoEventRegistration&& o) noexcept
      : state_(std::move(o.state_)), id_(std::exchange(o.id_, 0)) {}
  IoEventRegistration& operator=(IoEventRegistration&& o) noexcept;
  IoEventRegistration(const IoEventRegistration&) = delete;
  IoEventRegistration& operator=(const IoEventRegistration&) = delete;
  ~IoEventRegistration();

  // Deregisters now. When this returns, this registration signals its eventfd never again, even
  // for a write another vCPU is dispatching at this moment. ENOENT when not registered.
  Result<void> release();
  bool active() const { return id_ != 0; }

 private:
  friend class IoEventRegistry;
  IoEventRegistration(std::weak_ptr<detail::IoEventState> state, uint64_t id) : state_(std::move(state)), id_(id) {}
  std::weak_ptr<detail::IoEventState> state_;
  uint64_t id_ = 0;
};

struct IoEventStats {
  size_t registrations = 0;
  size_t in_kernel = 0;  // of those, how many KVM holds
};

class IoEventRegistry {
 public:
  static constexpr size_t kDefaultMaxRegistrations = 65536;
  struct Options {
    size_t max_registrations = kDefaultMaxRegistrations;
  };

  // vm may be null: then nothing goes to the kernel and every write is dispatched here. A non-null
  // vm must outlive the registry. Registrations may outlive the registry (they become inert).
  explicit IoEventRegistry(const VmFd* vm) : IoEventRegistry(vm, Options{}) {}
  IoEventRegistry(const VmFd* vm, Options opts);
  ~IoEventRegistry();
  IoEventRegistry(IoEventRegistry&&) noexcept = default;
  IoEventRegistry& operator=(IoEventRegistry&&) noexcept = default;

  // len is 1, 2, 4 or 8, or 0 (any length, MMIO only). See the error table above.
  Result<IoEventRegistration> add(IoSpace space, uint64_t addr, uint8_t len, IoMatch match,
                                  std::shared_ptr<const EventFd> eventfd);

  // For a guest write that reached userspace: signals every matching registration and returns
  // whether any matched, in which case the write is consumed (as KVM consumes it) and must not go
  // on to the bus. O(log n + group size); no allocation, no lock. Never call it for reads.
  bool dispatch_write(IoSpace space, uint64_t addr, std::span<const uint8_t> data) const;

  IoEventStats stats() const;

 private:
  std::shared_ptr<detail::IoEventState> state_;
};

}  // namespace evmm
