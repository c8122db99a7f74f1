#include "vmm/device_cmd.h"

#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <unistd.h>

#include <cstdio>
#include <cstring>

#include "base/log.h"
#include "devices/virtio/blk/blk.h"
#include "devices/virtio/rng/rng.h"
#include "event/event_loop.h"
#include "sandbox/seccomp.h"
#include "vhost/backend.h"

namespace evmm {
namespace {

Result<UniqueFd> listen_on(const std::string& path) {
  sockaddr_un addr{};
  addr.sun_family = AF_UNIX;
  if (path.empty() || path.size() >= sizeof addr.sun_path)
    return make_error(ENAMETOOLONG, "--socket {}: not a usable Unix socket path", path);
  std::memcpy(addr.sun_path, path.c_str(), path.size());
  // A socket left by an earlier run is replaced; any other file is not ours to remove.
  struct stat st;
  if (::lstat(path.c_str(), &st) == 0) {
    if (!S_ISSOCK(st.st_mode)) return make_error(EEXIST, "--socket {}: exists and is not a socket", path);
    ::unlink(path.c_str());
  }
  UniqueFd fd(::socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0));
  if (!fd.valid()) return errno_error("socket");
  if (::bind(fd.get(), reinterpret_cast<sockaddr*>(&addr), sizeof addr) < 0) return errno_error("--socket {}: bind", path);
  if (::listen(fd.get(), 1) < 0) return errno_error("--socket {}: listen", path);
  return fd;
}

Result<std::shared_ptr<virtio::VirtioDevice>> make_device(const DeviceCommand& cmd) {
  if (cmd.kind == "rng") return TRY(virtio::RngDevice::create({}));
  if (cmd.kind == "blk") {
    if (cmd.disk.path.empty()) return make_error(EINVAL, "evmm device blk needs --disk path=FILE");
    virtio::BlkConfig c;
    c.path = cmd.disk.path;
    c.readonly = cmd.disk.readonly;
    return TRY(virtio::BlkDevice::create(c));
  }
  return make_error(EINVAL, "evmm device {}: the devices served over vhost-user are rng and blk", cmd.kind);
}

void print_stats(const vhost::Backend& b, const virtio::VirtioDevice& dev) {
  const auto& s = b.stats();
  std::fprintf(stderr, "evmm device: messages %lu, refused %lu, kicks %lu, calls %lu, errors signalled %lu\n",
               (unsigned long)s.messages.load(), (unsigned long)s.bad_messages.load(), (unsigned long)s.kicks.load(),
               (unsigned long)s.calls.load(), (unsigned long)s.errors_signalled.load());
  if (auto* rng = dynamic_cast<const virtio::RngDevice*>(&dev))
    std::fprintf(stderr, "evmm device: rng requests %lu, bytes %lu\n", (unsigned long)rng->metrics().requests.load(),
                 (unsigned long)rng->metrics().bytes.load());
  if (auto* blk = dynamic_cast<const virtio::BlkDevice*>(&dev)) {
    const auto& m = blk->metrics();
    std::fprintf(stderr, "evmm device: blk requests %lu, reads %lu (%lu bytes), writes %lu (%lu bytes), flushes %lu\n",
                 (unsigned long)m.requests.load(), (unsigned long)m.reads.load(), (unsigned long)m.read_bytes.load(),
                 (unsigned long)m.writes.load(), (unsigned long)m.write_bytes.load(), (unsigned long)m.flushes.load());
  }
}

Result<int> serve(const DeviceCommand& cmd) {
  auto device = TRY(make_device(cmd));
  UniqueFd listener = TRY(listen_on(cmd.socket));
  LOG_INFO("evmm device {}: waiting for a frontend on {}", cmd.kind, cmd.socket);
  int c;
  do c = ::accept4(listener.get(), nullptr, nullptr, SOCK_CLOEXEC);
  while (c < 0 && errno == EINTR);
  if (c < 0) return errno_error("--socket {}: accept", cmd.socket);
  listener.reset();
  ::unlink(cmd.socket.c_str());
  auto backend = vhost::Backend::create(device, UniqueFd(c));
  auto loop = TRY(EventLoop::create());
  TRY(loop->add(backend));
  if (cmd.seccomp && seccomp::supported()) TRY(seccomp::install(seccomp::Role::Backend));
  while (!backend->finished()) TRY(loop->run_once(-1));
  if (cmd.stats) print_stats(*backend, *device);
  const std::string why = backend->why_finished();
  if (why.find("closed the connection") != std::string::npos && why.find("mid-message") == std::string::npos) return 0;
  std::fprintf(stderr, "evmm device: %s\n", why.c_str());
  return 1;
}

}  // namespace

int cmd_device(const DeviceCommand& cmd) {
  auto r = serve(cmd);
  if (!r) {
    std::fprintf(stderr, "evmm device: %s\n", r.error().message().c_str());
    return 1;
  }
  return *r;
}

}  // namespace evmm
