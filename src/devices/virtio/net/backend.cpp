#include "devices/virtio/net/backend.h"

#include <fcntl.h>
#include <linux/if.h>
#include <linux/if_tun.h>
#include <sys/ioctl.h>
#include <sys/socket.h>
#include <sys/un.h>

#include <cstring>

namespace evmm::virtio {

Result<NetBackend> NetBackend::open_tap(const std::string& name) {
  if (name.empty() || name.size() >= IFNAMSIZ)
    return make_error(EINVAL, "tap '{}': an interface name has 1 to {} characters", name, IFNAMSIZ - 1);
  UniqueFd fd(::open("/dev/net/tun", O_RDWR | O_NONBLOCK | O_CLOEXEC));
  if (!fd.valid()) return errno_error("tap {}: open /dev/net/tun", name);
  ifreq ifr{};
  std::memcpy(ifr.ifr_name, name.data(), name.size());
  ifr.ifr_flags = IFF_TAP | IFF_NO_PI;
  if (::ioctl(fd.get(), TUNSETIFF, &ifr) < 0)
    return errno_error("tap {}: TUNSETIFF (needs CAP_NET_ADMIN, or a tap made for this user with `ip tuntap`)", name);
  return NetBackend(std::move(fd), Kind::Tap);
}

Result<NetBackend> NetBackend::connect_socket(const std::string& path) {
  sockaddr_un peer{};
  peer.sun_family = AF_UNIX;
  if (path.empty() || path.size() >= sizeof peer.sun_path)
    return make_error(ENAMETOOLONG, "net socket '{}': a path has 1 to {} bytes", path, sizeof peer.sun_path - 1);
  std::memcpy(peer.sun_path, path.data(), path.size());
  UniqueFd fd(::socket(AF_UNIX, SOCK_DGRAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0));
  if (!fd.valid()) return errno_error("net socket {}: socket", path);
  // An address of just the family autobinds to a unique abstract name: the peer answers there.
  sockaddr_un self{};
  self.sun_family = AF_UNIX;
  if (::bind(fd.get(), reinterpret_cast<const sockaddr*>(&self), sizeof(sa_family_t)) < 0)
    return errno_error("net socket {}: autobind", path);
  if (::connect(fd.get(), reinterpret_cast<const sockaddr*>(&peer), sizeof peer) < 0)
    return errno_error("net socket {}: connect (the peer must already be bound there)", path);
  return NetBackend(std::move(fd), Kind::Socket);
}

Result<NetBackend> NetBackend::adopt(UniqueFd fd, Kind kind) {
  int flags = ::fcntl(fd.get(), F_GETFL);
  if (flags < 0 || ::fcntl(fd.get(), F_SETFL, flags | O_NONBLOCK) < 0) return errno_error("net backend: O_NONBLOCK");
  return NetBackend(std::move(fd), kind);
}

ssize_t NetBackend::recv(std::span<uint8_t> buf) {
  for (;;) {
    ssize_t n = ::read(fd_.get(), buf.data(), buf.size());
    if (n >= 0) return n;
    if (errno != EINTR) return -errno;
  }
}

ssize_t NetBackend::send(std::span<const iovec> iov) {
  for (;;) {
    ssize_t n = ::writev(fd_.get(), iov.data(), int(iov.size()));
    if (n >= 0) return n;
    if (errno != EINTR) return -errno;
  }
}

}  // namespace evmm::virtio
