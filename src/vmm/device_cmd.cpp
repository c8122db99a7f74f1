#include "vmm/device_cmd.h"

#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <unistd.h>

#include <cstdio>
#include <cstring>

#include "base/log.h"
#include "devices/virtio/blk/blk.h"
#include "devices/virtio/console/console.h"
#include "devices/virtio/net/net.h"
#include "devices/virtio/rng/rng.h"
#include "event/event_loop.h"
#include "sandbox/seccomp.h"
#include "vhost/backend.h"
#include "vmm/console.h"

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

// What a device needs beyond itself while it serves: the console's output and input.
struct DeviceSide {
  std::optional<ConsoleOutput> out;
};

Result<std::shared_ptr<virtio::VirtioDevice>> make_device(const DeviceCommand& cmd, DeviceSide& side) {
  if (cmd.kind == "rng") return TRY(virtio::RngDevice::create({}));
  if (cmd.kind == "blk") {
    if (cmd.disk.path.empty()) return make_error(EINVAL, "evmm device blk needs --disk path=FILE");
    virtio::BlkConfig c;
    c.path = cmd.disk.path;
    c.readonly = cmd.disk.readonly;
    return TRY(virtio::BlkDevice::create(c));
  }
  if (cmd.kind == "console") {
    side.out.emplace(TRY(ConsoleOutput::open(SerialConfig{})));  // standard output
    return TRY(virtio::ConsoleDevice::create([out = &*side.out](std::span<const uint8_t> b) { out->write(b); }));
  }
  if (cmd.kind == "net") {
    if (!cmd.net) return make_error(EINVAL, "evmm device net needs --net tap=NAME|socket=PATH");
    const NetConfig& n = *cmd.net;
    if (n.backend == NetConfig::Backend::VhostUser)
      return make_error(EINVAL, "evmm device net: --net vhost-user= is the frontend's; give tap= or socket=");
    auto backend = n.backend == NetConfig::Backend::Tap ? virtio::NetBackend::open_tap(n.target)
                                                        : virtio::NetBackend::connect_socket(n.target);
    if (!backend) return make_error(backend.error().code(), "--net: {}", backend.error().message());
    const auto mac = n.mac.value_or(virtio::derived_mac(0));
    return std::shared_ptr<virtio::VirtioDevice>(virtio::NetDevice::create(std::move(*backend), mac));
  }
  return make_error(EINVAL, "evmm device {}: the devices served over vhost-user are rng, blk, console and net", cmd.kind);
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
  if (auto* con = dynamic_cast<const virtio::ConsoleDevice*>(&dev)) {
    const auto& m = con->metrics();
    std::fprintf(stderr, "evmm device: console tx_bytes %lu, rx_bytes %lu, bad_chains %lu\n",
                 (unsigned long)m.tx_bytes.load(), (unsigned long)m.rx_bytes.load(), (unsigned long)m.bad_chains.load());
  }
  if (auto* net = dynamic_cast<const virtio::NetDevice*>(&dev)) {
    const auto& m = net->metrics();
    std::fprintf(stderr, "evmm device: net rx_frames %lu, tx_frames %lu, rx_dropped %lu, guest_errors %lu, backend_errors %lu\n",
                 (unsigned long)m.rx_frames.load(), (unsigned long)m.tx_frames.load(),
                 (unsigned long)(m.rx_too_big.load() + m.rx_runts.load()), (unsigned long)m.guest_errors(),
                 (unsigned long)(m.rx_backend_errors.load() + m.tx_backend_errors.load()));
  }
}

Result<int> serve(const DeviceCommand& cmd) {
  DeviceSide side;
  auto device = TRY(make_device(cmd, side));
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
  // The console's keyboard: standard input, a character at a time when it is a terminal.
  std::optional<TerminalMode> raw;
  std::unique_ptr<ConsoleInput> input;
  auto console = std::dynamic_pointer_cast<virtio::ConsoleDevice>(device);
  if (console) {
    raw.emplace(STDIN_FILENO);
    input = TRY(ConsoleInput::attach(*loop, STDIN_FILENO, [console](std::span<const uint8_t> b) {
      return console->push_input(b);
    }));
    console->set_space_callback([p = input.get()] { p->notify_space(); });
  }
  if (cmd.seccomp && seccomp::supported()) TRY(seccomp::install(seccomp::Role::Backend));
  while (!backend->finished()) TRY(loop->run_once(-1));
  input.reset();
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
