// The VM's virtio-mmio devices: built from VirtioConfig, each given its window and GSI
// (memory/layout.h), put on the MMIO bus and the device event loop, and described to the guest
// (the DSDT and, unless told not to, the kernel command line).
#pragma once

#include <memory>
#include <string>
#include <vector>

#include "boot/boot.h"
#include "bus/io_bus.h"
#include "devices/virtio/console/console.h"
#include "devices/virtio/mmio_transport.h"
#include "devices/virtio/net/net.h"
#include "event/io_event_registry.h"
#include "memory/guest_memory.h"
#include "vmm/config.h"
#include "vmm/console.h"

namespace evmm {

class PlatformDevices;

class VirtioDevices {
 public:
  // E2BIG when more devices are asked for than there are windows (platform::kVirtioGsis).
  static Result<std::unique_ptr<VirtioDevices>> create(const VmConfig& cfg, const GuestMemory& mem, IoBus& mmio,
                                                       IoEventRegistry& ioevents, PlatformDevices& platform,
                                                       ConsoleOutput& out);
  // Leaves the event loop first: once it returns, no device code runs.
  ~VirtioDevices();

  // What the DSDT says of each device.
  std::vector<VirtioMmioDesc> describe() const;
  // The `virtio_mmio.device=` entries, space-separated (empty when told not to add them).
  std::string cmdline() const;
  // Feeds fd (standard input) to the virtio console with back-pressure; ENODEV without one.
  Result<void> attach_console_input(int fd);
  bool has_console() const { return console_ != nullptr; }
  // One line of counters for --stats.
  std::string stats() const;

 private:
  struct Slot {
    std::string name;
    uint32_t gsi;
    std::shared_ptr<virtio::MmioTransport> transport;
    EventLoop::SubscriberId id;
  };
  VirtioDevices(const VmConfig& cfg, PlatformDevices& platform) : cfg_(cfg), platform_(platform) {}
  Result<void> add(std::shared_ptr<virtio::VirtioDevice> dev, std::string name, const GuestMemory& mem, IoBus& mmio,
                   IoEventRegistry& ioevents);
  Result<void> add_net(const NetConfig& n, unsigned index, const GuestMemory& mem, IoBus& mmio, IoEventRegistry& ioevents);

  const VmConfig& cfg_;
  PlatformDevices& platform_;
  std::vector<Slot> slots_;
  std::vector<std::shared_ptr<virtio::NetDevice>> nets_;
  std::shared_ptr<virtio::ConsoleDevice> console_;
  std::unique_ptr<ConsoleInput> console_in_;
};

}  // namespace evmm
