#include "debug/gdb_server.h"

#include <arpa/inet.h>
#include <netinet/in.h>
#include <poll.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <unistd.h>

#include <algorithm>
#include <cstring>

#include <fmt/format.h>

#include "base/discard.h"
#include "base/log.h"

namespace evmm {
namespace {

// How long a stop may take to park every vCPU before it is reported anyway: a vCPU stuck in a
// host call would otherwise hang gdb too.
constexpr std::chrono::milliseconds kStopTimeout{5000};

}  // namespace

std::string GdbEndpoint::describe() const { return tcp ? fmt::format("127.0.0.1:{}", port) : path; }

Result<GdbEndpoint> parse_gdb_endpoint(const std::string& spec) {
  if (spec.empty()) return make_error(EINVAL, "--gdb wants a Unix socket path or a TCP port");
  if (std::all_of(spec.begin(), spec.end(), [](char c) { return c >= '0' && c <= '9'; })) {
    unsigned long port = spec.size() > 5 ? 0 : std::stoul(spec);
    if (port == 0 || port > 65535) return make_error(EINVAL, "--gdb {}: a TCP port is 1 to 65535", spec);
    return GdbEndpoint{true, static_cast<uint16_t>(port), {}};
  }
  if (spec.size() >= sizeof(sockaddr_un{}.sun_path))
    return make_error(ENAMETOOLONG, "--gdb {}: a Unix socket path has at most {} bytes", spec, sizeof(sockaddr_un{}.sun_path) - 1);
  return GdbEndpoint{false, 0, spec};
}

Result<UniqueFd> gdb_listen(const GdbEndpoint& ep) {
  UniqueFd fd(::socket(ep.tcp ? AF_INET : AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0));
  if (fd.get() < 0) return errno_error("--gdb: socket");
  if (ep.tcp) {
    int one = 1;
    ::setsockopt(fd.get(), SOL_SOCKET, SO_REUSEADDR, &one, sizeof one);
    sockaddr_in a{};
    a.sin_family = AF_INET;
    a.sin_port = htons(ep.port);
    a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    if (::bind(fd.get(), reinterpret_cast<sockaddr*>(&a), sizeof a) < 0) return errno_error("--gdb: bind {}", ep.describe());
  } else {
    // A socket left by an earlier evmm is replaced; any other file is not evmm's to remove.
    struct stat st;
    if (::lstat(ep.path.c_str(), &st) == 0) {
      if (!S_ISSOCK(st.st_mode)) return make_error(EEXIST, "--gdb {}: exists and is not a socket", ep.path);
      ::unlink(ep.path.c_str());
    }
    sockaddr_un a{};
    a.sun_family = AF_UNIX;
    std::memcpy(a.sun_path, ep.path.data(), ep.path.size());
    if (::bind(fd.get(), reinterpret_cast<sockaddr*>(&a), sizeof a) < 0) return errno_error("--gdb: bind {}", ep.path);
  }
  if (::listen(fd.get(), 1) < 0) return errno_error("--gdb: listen");
  return fd;
}

Result<UniqueFd> gdb_accept(int listen_fd) {
  int c = ::accept4(listen_fd, nullptr, nullptr, SOCK_CLOEXEC);
  if (c < 0) return errno_error("--gdb: accept");
  return UniqueFd(c);
}

GdbServer::GdbServer(UniqueFd conn, VcpuDebugger& dbg, int vm_stopped_fd, std::function<int()> exit_status, EventFd quit)
    : conn_(std::move(conn)), dbg_(dbg), vm_stopped_fd_(vm_stopped_fd), exit_status_(std::move(exit_status)),
      quit_(std::move(quit)), stub_(dbg) {}

Result<std::unique_ptr<GdbServer>> GdbServer::start(UniqueFd conn, VcpuDebugger& dbg, int vm_stopped_fd,
                                                    std::function<int()> exit_status,
                                                    std::function<Result<void>()> setup) {
  std::unique_ptr<GdbServer> s(new GdbServer(std::move(conn), dbg, vm_stopped_fd, std::move(exit_status), TRY(EventFd::create())));
  s->thread_ = std::thread([p = s.get(), setup = std::move(setup)] { p->serve(setup); });
  return s;
}

GdbServer::~GdbServer() {
  discard_error(quit_.signal(), stats_.io_errors, "stopping the gdb server");
  if (thread_.joinable()) thread_.join();
}

bool GdbServer::send_raw(const std::string& bytes) {
  size_t done = 0;
  while (done < bytes.size()) {
    ssize_t n = ::write(conn_.get(), bytes.data() + done, bytes.size() - done);
    if (n < 0 && errno == EINTR) continue;
    if (n <= 0) {
      stats_.io_errors.fetch_add(1, std::memory_order_relaxed);
      return false;
    }
    done += static_cast<size_t>(n);
  }
  return true;
}

bool GdbServer::send_packet(const std::string& data) {
  last_sent_ = gdb::frame(data);
  return send_raw(last_sent_);
}

bool GdbServer::on_event(const gdb::PacketEvent& e) {
  using Kind = gdb::PacketEvent::Kind;
  switch (e.kind) {
    case Kind::Ack: return true;
    case Kind::Nack: return send_raw(last_sent_);
    case Kind::BadChecksum:
      stats_.bad_packets.fetch_add(1, std::memory_order_relaxed);
      return send_raw("-");
    case Kind::TooLong:
      stats_.bad_packets.fetch_add(1, std::memory_order_relaxed);
      return send_raw("+") && send_packet(fmt::format("E{:02x}", E2BIG));
    case Kind::Interrupt:
      if (running_) dbg_.interrupt();
      return true;
    case Kind::Packet: break;
  }
  stats_.packets.fetch_add(1, std::memory_order_relaxed);
  LOG_DEBUG("gdb: packet '{}'", e.data.substr(0, 64));
  // The command runs even when the ack cannot be sent: gdb may send 'k' or 'D' and close at once.
  bool connected = send_raw("+");
  if (running_) {
    // All-stop: gdb waits for the stop reply before it sends anything but Ctrl-C.
    LOG_WARN("gdb: packet '{}' while the VM runs; ignored", e.data.substr(0, 32));
    return connected;
  }
  auto reply = stub_.handle(e.data);
  if (stub_.killed()) return false;
  if (!reply) {
    running_ = true;
    return connected;
  }
  if (!connected || !send_packet(*reply)) return false;
  return !stub_.detached();
}

bool GdbServer::on_stop() {
  auto stop = dbg_.take_stop(kStopTimeout);
  if (!stop) {
    LOG_WARN("gdb: {}", stop.error().message());
    if (stop.error().code() == ENOENT) return true;
  }
  stats_.stops.fetch_add(1, std::memory_order_relaxed);
  running_ = false;
  // A stop that timed out is still reported: the thread that did not park is named by none.
  return send_packet(stub_.stop_reply(stop ? *stop : StopEvent{0, StopEvent::Reason::Interrupt}));
}

void GdbServer::linger() {
  // gdb acks the W and then closes; closing first makes its ack fail as a "Broken pipe".
  constexpr int kLingerMs = 2000;
  uint8_t buf[256];
  pollfd fd{conn_.get(), POLLIN, 0};
  while (::poll(&fd, 1, kLingerMs) > 0) {
    if (::read(conn_.get(), buf, sizeof buf) <= 0) return;
  }
}

void GdbServer::serve(const std::function<Result<void>()>& setup) {
  if (setup) {
    if (auto r = setup(); !r) {
      LOG_ERROR("gdb server: {}; the VM runs without the debugger", r.error().message());
      discard_error(dbg_.detach(), stats_.io_errors, "detaching from the VM");
      return;
    }
  }
  std::vector<gdb::PacketEvent> events;
  uint8_t buf[4096];
  for (;;) {
    pollfd fds[4] = {{conn_.get(), POLLIN, 0}, {dbg_.stop_fd(), POLLIN, 0}, {vm_stopped_fd_, POLLIN, 0}, {quit_.fd(), POLLIN, 0}};
    if (::poll(fds, 4, -1) < 0) {
      if (errno == EINTR) continue;
      stats_.io_errors.fetch_add(1, std::memory_order_relaxed);
      break;
    }
    // The VM's end before the quit: evmm quits the server as soon as the VM has ended, so both are
    // often ready together, and gdb must still hear the W.
    if (fds[2].revents) {
      if (send_packet(fmt::format("W{:02x}", exit_status_ ? exit_status_() & 0xff : 0))) linger();
      return;
    }
    if (fds[3].revents) return;
    if (fds[1].revents && !on_stop()) break;
    if (fds[0].revents) {
      ssize_t n = ::read(conn_.get(), buf, sizeof buf);
      if (n < 0 && errno == EINTR) continue;
      if (n <= 0) break;
      events.clear();
      decoder_.feed(std::span(buf, static_cast<size_t>(n)), events);
      bool go_on = true;
      for (const auto& e : events) {
        go_on = on_event(e);
        if (!go_on) break;
      }
      if (!go_on) break;
    }
  }
  // gdb is gone, detached or killed the VM: without gdb nothing may stay stopped.
  if (!stub_.killed() && !stub_.detached()) {
    LOG_INFO("gdb went away: removing its breakpoints and letting the VM run");
    discard_error(dbg_.detach(), stats_.io_errors, "detaching from the VM");
  }
}

}  // namespace evmm
