// What a VM is made of: everything the CLI (or an embedding program) decides.
#pragma once

#include <array>
#include <cstdint>
#include <optional>
#include <string>
#include <vector>

#include "boot/boot_options.h"
#include "xen/xen_config.h"

namespace evmm {

enum class OnReset { Reset, Exit };
// What a guest's ACPI S3 request (SLP_TYP 1 with SLP_EN) does: suspend every vCPU until a wake
// event (the default), end the VM (status 16), or nothing (the write is ignored).
enum class OnSuspend { Suspend, Exit, Ignore };

struct SerialConfig {
  enum class Kind { Stdio, File, None } kind = Kind::Stdio;
  std::string path;  // for File
  // For File and None: the guest's input comes from this fd (a pipe, a socket, a file), read on
  // the device event loop until EOF; -1 for none. The VM does not own it: keep it open while the
  // VM runs. Stdio always reads standard input.
  int input_fd = -1;
};

// virtio-mmio devices (devices/virtio/), in the order their windows are placed.
struct DiskConfig {
  std::string path;
  bool readonly = false;
  std::string vhost_user;  // a vhost-user-blk backend's socket instead of an image (path stays empty)
};
// A virtio-fs device whose file system another process (virtiofsd) serves over vhost-user.
struct FsConfig {
  std::string vhost_user;  // the backend's socket
  std::string tag;         // what the guest mounts: mount -t virtiofs TAG /mnt, or root=TAG rootfstype=virtiofs
};
struct NetConfig {
  // VhostUser: another process moves the frames (`evmm device net`, a DPDK or OVS backend).
  enum class Backend { Tap, Socket, VhostUser } backend = Backend::Tap;
  std::string target;  // the tap interface's name, the Unix datagram socket's path, or the vhost-user socket
  std::optional<std::array<uint8_t, 6>> mac;  // none: a locally administered one derived from the index
};
struct VirtioConfig {
  std::vector<DiskConfig> disks;
  std::vector<FsConfig> filesystems;
  std::vector<NetConfig> nets;
  bool console = false;  // virtio-console on stdio (the guest's hvc0)
  std::string console_vhost_user;  // ... served by another process instead (`evmm device console`)
  bool rng = false;
  // Add `virtio_mmio.device=` entries to the kernel command line. The DSDT describes the devices
  // either way; while the entries are given, its devices say they are absent (_STA 0) so that Linux
  // does not probe a device twice.
  bool cmdline_entries = true;
  bool any() const { return !disks.empty() || !filesystems.empty() || !nets.empty() || console || rng; }
  bool console_in_process() const { return console && console_vhost_user.empty(); }
};

struct VmConfig {
  std::string kernel;
  std::string initrd;
  std::string cmdline;
  // How a Linux kernel is booted (boot/boot_options.h): `--boot` and `--decompress`.
  BootProtocol boot = BootProtocol::Auto;
  Decompress decompress = Decompress::Host;
  unsigned cpus = 1;
  uint64_t memory_mib = 128;
  SerialConfig serial;
  OnReset on_reset = OnReset::Reset;
  OnSuspend on_suspend = OnSuspend::Suspend;
  // Per-thread seccomp filters (sandbox/seccomp.h) on the vCPU threads and the device event loop,
  // installed before any guest code runs; ignored where seccomp::supported() is false. An embedder
  // whose device callbacks make other system calls on those threads turns this off.
  bool seccomp = true;
  // A Xen HVM environment for the guest (xen/xen_hvm.h): CPUID leaves, hypercalls, event channels.
  std::optional<XenConfig> xen;
  VirtioConfig virtio;
  // A debugger (debug/vcpu_debugger.h, Vm::debugger()): the vCPUs wait at its gate until it resumes them.
  bool debugger = false;
};

}  // namespace evmm
