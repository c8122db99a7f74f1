// `evmm device KIND --socket PATH`: one of evmm's virtio devices served over vhost-user from its own
// process (vhost/backend.h), for QEMU, cloud-hypervisor or another evmm to use as the frontend.
// The device is the one `evmm run` carries in process. A console writes the guest's hvc0 to this
// process's standard output and feeds it standard input; a net device opens its tap or datagram
// socket here, before the filter.
#pragma once

#include <optional>
#include <string>

#include "base/result.h"
#include "vmm/config.h"

namespace evmm {

struct DeviceCommand {
  std::string kind;    // rng, blk, console or net
  std::string socket;  // the path to listen on; the frontend connects (QEMU's -chardev socket,path=)
  DiskConfig disk;     // blk
  std::optional<NetConfig> net;  // net: where the frames go (tap= or socket=; the mac is the config's)
  bool seccomp = true;
  bool stats = false;  // print the backend's and the device's counters when the frontend goes
};

// Listens on the socket, serves the first frontend that connects until it disconnects, and returns
// the exit status (0 when the frontend closed the connection; 1 when it broke or the device failed).
int cmd_device(const DeviceCommand& cmd);

}  // namespace evmm
