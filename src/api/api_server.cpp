#include "api/api_server.h"

#include <poll.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <unistd.h>

#include <cstring>
#include <future>
#include <vector>

#include "base/log.h"

namespace evmm::api {
namespace {

using Clock = std::chrono::steady_clock;

struct Connection {
  UniqueFd fd;
  std::string in;
  Clock::time_point last;                          // the last byte in or the last answer out
  std::optional<Clock::time_point> request_start;  // the first byte of a request still incomplete
};

// Writes all of out; the peer may be slow, never forever (the socket's send timeout).
bool send_all(int fd, std::string_view out) {
  while (!out.empty()) {
    ssize_t n = ::send(fd, out.data(), out.size(), MSG_NOSIGNAL);
    if (n < 0 && errno == EINTR) continue;
    if (n <= 0) return false;
    out.remove_prefix(size_t(n));
  }
  return true;
}

}  // namespace

Result<std::unique_ptr<ApiServer>> ApiServer::start(const std::string& path, Handler handler, Options options) {
  sockaddr_un addr{};
  addr.sun_family = AF_UNIX;
  if (path.empty() || path.size() >= sizeof addr.sun_path)
    return make_error(ENAMETOOLONG, "api socket: the path must be 1 to {} bytes", sizeof addr.sun_path - 1);
  std::memcpy(addr.sun_path, path.data(), path.size());
  UniqueFd fd(::socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC | SOCK_NONBLOCK, 0));
  if (!fd.valid()) return errno_error("api socket");
  // Mode 0600 from the start: no moment when another user could connect.
  const mode_t old = ::umask(0177);
  const int b = ::bind(fd.get(), reinterpret_cast<const sockaddr*>(&addr), sizeof addr);
  const int bind_errno = errno;
  ::umask(old);
  if (b < 0) {
    errno = bind_errno;
    return errno_error("api socket: bind {}", path);
  }
  if (::listen(fd.get(), 16) < 0) {
    auto err = errno_error("api socket: listen on {}", path);
    ::unlink(path.c_str());
    return err;
  }
  auto stop = EventFd::create();
  if (!stop) {
    ::unlink(path.c_str());
    return tl::unexpected(stop.error());
  }
  std::unique_ptr<ApiServer> s(new ApiServer(path, std::move(fd), std::move(handler), std::move(options), std::move(*stop)));
  // The thread's setup (its filter) must hold before anyone is told the API is up.
  std::promise<Result<void>> ready;
  auto setup = ready.get_future();
  s->thread_ = std::thread([p = s.get(), ready = std::move(ready)]() mutable {
    Result<void> r = p->options_.thread_setup ? p->options_.thread_setup() : Result<void>{};
    const bool ok = r.has_value();
    ready.set_value(std::move(r));
    if (ok) p->run();
  });
  if (auto r = setup.get(); !r) return tl::unexpected(r.error().wrap("api thread"));  // ~ApiServer joins, unlinks
  return s;
}

ApiServer::ApiServer(std::string path, UniqueFd listener, Handler handler, Options options, EventFd stop)
    : path_(std::move(path)), uid_(::geteuid()), listener_(std::move(listener)), handler_(std::move(handler)), options_(std::move(options)),
      stop_(std::move(stop)) {}

ApiServer::~ApiServer() {
  (void)stop_.signal();
  if (thread_.joinable()) thread_.join();
  ::unlink(path_.c_str());
}

void ApiServer::run() {
  std::vector<Connection> conns;
  for (;;) {
    // The nearest deadline: a request's, or an idle connection's.
    const auto now = Clock::now();
    auto deadline = now + std::chrono::hours(1);
    for (const auto& c : conns)
      deadline = std::min(deadline, c.request_start ? *c.request_start + options_.request_timeout : c.last + options_.idle_timeout);
    std::vector<pollfd> fds{{stop_.fd(), POLLIN, 0}, {listener_.get(), POLLIN, 0}};
    for (const auto& c : conns) fds.push_back({c.fd.get(), POLLIN, 0});
    const auto wait = std::chrono::duration_cast<std::chrono::milliseconds>(deadline - now).count();
    if (::poll(fds.data(), fds.size(), int(std::max<long>(0, wait)) + 1) < 0 && errno != EINTR) {
      LOG_ERROR("api: poll: {}", std::strerror(errno));
      return;
    }
    if (fds[0].revents) return;
    const size_t polled = conns.size();  // a connection accepted below is polled from the next round
    if (fds[1].revents & POLLIN) {
      UniqueFd c(::accept4(listener_.get(), nullptr, nullptr, SOCK_CLOEXEC | SOCK_NONBLOCK));
      if (c.valid()) {
        ucred cred{};
        socklen_t len = sizeof cred;
        if (::getsockopt(c.get(), SOL_SOCKET, SO_PEERCRED, &cred, &len) < 0 || cred.uid != uid_) {
          stats_.refused_peers.fetch_add(1, std::memory_order_relaxed);
          LOG_WARN("api: refused a peer of uid {} (evmm runs as {})", cred.uid, uid_);
        } else if (conns.size() >= kMaxConnections) {
          stats_.refused_peers.fetch_add(1, std::memory_order_relaxed);
          (void)send_all(c.get(), format_response(503, fault("too many API connections"), true));
        } else {
          stats_.connections.fetch_add(1, std::memory_order_relaxed);
          const timeval tv{1, 0};  // a reader that stops reading our answer stalls us this long at most
          ::setsockopt(c.get(), SOL_SOCKET, SO_SNDTIMEO, &tv, sizeof tv);
          conns.push_back({std::move(c), {}, Clock::now(), std::nullopt});
        }
      }
    }
    std::vector<bool> close(conns.size(), false);
    for (size_t i = 0; i < polled; ++i) {
      Connection& c = conns[i];
      const short rev = fds[i + 2].revents;
      if (rev & POLLIN) {
        char buf[4096];
        ssize_t n = ::recv(c.fd.get(), buf, sizeof buf, 0);
        if (n <= 0) {
          close[i] = !(n < 0 && (errno == EAGAIN || errno == EINTR));
          continue;
        }
        if (!c.request_start) c.request_start = Clock::now();
        c.in.append(buf, size_t(n));
        c.last = Clock::now();
        // Every whole request in the buffer, in order (a client may pipeline).
        for (;;) {
          ParseResult p = parse_request(c.in, options_.limits);
          if (std::holds_alternative<std::monostate>(p)) break;
          if (auto* e = std::get_if<HttpError>(&p)) {
            stats_.bad_requests.fetch_add(1, std::memory_order_relaxed);
            (void)send_all(c.fd.get(), format_response(e->status, fault(e->message), true));
            close[i] = true;
            break;
          }
          auto& req = std::get<Parsed>(p);
          stats_.requests.fetch_add(1, std::memory_order_relaxed);
          const ApiResponse r = handler_(req.request);
          c.in.erase(0, req.consumed);
          c.request_start = c.in.empty() ? std::nullopt : std::optional(Clock::now());
          c.last = Clock::now();
          if (!send_all(c.fd.get(), format_response(r.status, r.body, !req.request.keep_alive, r.content_type)) || !req.request.keep_alive) {
            close[i] = true;
            break;
          }
        }
      } else if (rev & (POLLHUP | POLLERR | POLLNVAL)) {
        close[i] = true;
      } else if (c.request_start && Clock::now() >= *c.request_start + options_.request_timeout) {
        stats_.timeouts.fetch_add(1, std::memory_order_relaxed);
        (void)send_all(c.fd.get(), format_response(408, fault("the request did not arrive in time"), true));
        close[i] = true;
      } else if (!c.request_start && Clock::now() >= c.last + options_.idle_timeout) {
        stats_.timeouts.fetch_add(1, std::memory_order_relaxed);
        close[i] = true;
      }
    }
    for (size_t i = conns.size(); i-- > 0;)
      if (close[i]) conns.erase(conns.begin() + long(i));
  }
}

}  // namespace evmm::api
