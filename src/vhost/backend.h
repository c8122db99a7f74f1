// A vhost-user backend: serves one of evmm's virtio devices (the same VirtioDevice the in-process
// MMIO transport carries) to one frontend over a connected Unix stream socket. The frontend's guest
// memory arrives as fds (SET_MEM_TABLE, ADD_MEM_REG) and is mapped into an AddressSpace, which the
// device and queues reach through a pin (AddressSpace::pin) renewed at each change; its rings are walked by the
// same Virtqueue; a kick eventfd from the frontend wakes the device and the device's used entries
// signal the frontend's call eventfd. (The model: libvhost-user, rust-vmm's vhost-user-backend.)
//
// Rules:
//   - An EventSubscriber: it runs on one event loop thread, with the device's own fds beside its
//     socket and kick fds.
//   - A malformed or refused message is counted, answered with a failure when the frontend asked
//     for an acknowledgement, and the connection carries on; a stream that cannot be resynchronised
//     (a payload over the limit, a close mid-message) ends it. finished() then turns true.
//   - A device that cannot go on signals the ring's error eventfd (SET_VRING_ERR) and is reset.
//   - Dirty logging (LOG_SHMFD, VHOST_F_LOG_ALL): the frontend's log is mapped at SET_LOG_BASE and,
//     while LOG_ALL is acked, every write the device and the rings make to guest memory marks its
//     pages there after it lands (virtio/queue.h), so a migrating frontend copies them again.
#pragma once

#include <atomic>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "base/eventfd.h"
#include "base/fd.h"
#include "devices/virtio/device.h"
#include "event/event_loop.h"
#include "memory/address_space.h"
#include "memory/guest_memory.h"
#include "memory/page_log.h"
#include "vhost/vhost_user.h"

namespace evmm::vhost {

struct BackendStats {
  std::atomic<uint64_t> messages{0};
  std::atomic<uint64_t> bad_messages{0};  // refused by the parser or by the state they arrived in
  std::atomic<uint64_t> kicks{0};
  std::atomic<uint64_t> calls{0};
  std::atomic<uint64_t> errors_signalled{0};
};

class Backend final : public EventSubscriber, private virtio::VirtioSignals {
 public:
  static std::shared_ptr<Backend> create(std::shared_ptr<virtio::VirtioDevice> device, UniqueFd conn);
  ~Backend() override;

  void init(EventOps& ops) override;
  void process(const Event& event, EventOps& ops) override;

  // The connection ended (the frontend closed it, or it broke); why says which.
  bool finished() const { return finished_.load(std::memory_order_acquire); }
  std::string why_finished() const;
  const BackendStats& stats() const { return stats_; }
  // Features the frontend set (SET_FEATURES), and whether the device is running.
  uint64_t acked_features() const { return acked_; }
  bool active() const { return active_; }

 private:
  struct Ring {
    uint16_t num = 0;
    std::optional<VringAddr> addr;
    uint16_t base = 0;
    UniqueFd kick, call, err;
    bool started = false;  // has its kick fd, its address and its size: SET_VRING_KICK seen
    bool enabled = false;  // SET_VRING_ENABLE (or started, without protocol features)
  };

  Backend(std::shared_ptr<virtio::VirtioDevice> device, UniqueFd conn);

  // What a request answers: nothing (then an acknowledgement if asked for), or these bytes.
  Result<std::optional<std::vector<uint8_t>>> handle(Message& m, EventOps& ops);
  // SET_MEM_TABLE: a new address space with these regions. ADD/REM_MEM_REG change the one there is.
  Result<void> set_memory(std::vector<MemRegion> regions, std::vector<UniqueFd> fds);
  Result<void> add_memory(const MemRegion& r, int fd);
  Result<void> remove_memory(const MemRegion& r);
  // A table change stops the device and lets go of its pin (unbind), changes the space, then pins
  // the space's table anew and starts the device again on it (bind).
  void unbind();
  Result<void> bind();
  Result<uint64_t> to_guest(uint64_t user_addr) const;
  // Activates the device once a ring is started and enabled; activates rings that join later.
  Result<void> try_activate();
  void deactivate();
  void finish(std::string why);
  // Points the queues at the dirty log while LOG_ALL is negotiated and a log is mapped.
  void apply_log();
  uint64_t device_features() const { return acked_ & ~kFeatureLogAll; }

  // VirtioSignals, for the device.
  void used(uint16_t q) override;
  void config_changed() override;
  void needs_reset(std::string_view why) override;

  std::shared_ptr<virtio::VirtioDevice> device_;
  UniqueFd conn_;
  std::unique_ptr<virtio::Virtqueue[]> queue_storage_;
  std::span<virtio::Virtqueue> queues_;
  std::vector<Ring> rings_;
  // The frontend's memory: its table (the frontend's addresses, for the rings), the address space
  // that maps it (and checks each region), and the pin of that space the device and queues use.
  std::vector<MemRegion> table_;
  std::unique_ptr<AddressSpace> space_;
  std::optional<GuestMemory> mem_;
  std::unique_ptr<PageLog> log_;  // SET_LOG_BASE
  uint64_t acked_ = 0;
  uint64_t protocol_ = 0;
  bool protocol_negotiated_ = false;  // VHOST_USER_F_PROTOCOL_FEATURES in SET_FEATURES: rings start disabled
  bool active_ = false;
  EventOps* ops_ = nullptr;  // valid during init()/process()
  std::atomic<bool> finished_{false};
  std::string why_finished_;
  BackendStats stats_;
};

}  // namespace evmm::vhost
