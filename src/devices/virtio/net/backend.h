// Where a virtio-net device's frames go and come from: a tap interface or a connected Unix datagram
// socket. Both are one nonblocking fd on which one read(2) is one frame and one writev(2) sends
// one, so the device thread needs no socket calls of its own (sandbox/seccomp.cpp kDevice).
//
// Rules:
//   - The fd is opened (and, for a tap, attached with TUNSETIFF) by whoever builds the VM, on the
//     main thread: the device thread's filter allows no open, socket or ioctl.
//   - tap: IFF_TAP | IFF_NO_PI, without IFF_VNET_HDR: the device offers no checksum or GSO
//     offload, so there is no header worth passing through; each read is one Ethernet frame.
//   - socket: SOCK_DGRAM, bound to an abstract autobind address (so the peer can answer) and
//     connected to a path where the peer is already bound; one datagram is one Ethernet frame.
//
// Errors: open_tap: ENOENT without /dev/net/tun, EPERM without CAP_NET_ADMIN, EBUSY when the
// interface is another program's. connect_socket: ENOENT or ECONNREFUSED when no peer is bound at
// the path. recv and send return -errno (EAGAIN when the fd would block).
#pragma once

#include <sys/uio.h>

#include <span>
#include <string>

#include "base/fd.h"
#include "base/result.h"

namespace evmm::virtio {

class NetBackend {
 public:
  enum class Kind { Tap, Socket };

  static Result<NetBackend> open_tap(const std::string& name);
  static Result<NetBackend> connect_socket(const std::string& path);
  // An fd the caller made (a socketpair in tests); made nonblocking here.
  static Result<NetBackend> adopt(UniqueFd fd, Kind kind);

  Kind kind() const { return kind_; }
  int fd() const { return fd_.get(); }
  // One frame into buf: its length, or -errno. A longer datagram is cut to buf.size() (read(2)
  // cannot say by how much), so the device reads with a byte to spare over the largest frame.
  ssize_t recv(std::span<uint8_t> buf);
  // One frame from iov; the bytes sent or -errno.
  ssize_t send(std::span<const iovec> iov);

 private:
  NetBackend(UniqueFd fd, Kind kind) : fd_(std::move(fd)), kind_(kind) {}
  UniqueFd fd_;
  Kind kind_;
};

}  // namespace evmm::virtio
