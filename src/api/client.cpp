#include "api/client.h"

#include <poll.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>

#include <cstring>

#include "base/fd.h"

namespace evmm::api {

Result<HttpResponse> call(const std::string& socket, std::string_view method, std::string_view path, std::string_view body,
                          std::chrono::milliseconds timeout) {
  sockaddr_un addr{};
  addr.sun_family = AF_UNIX;
  if (socket.empty() || socket.size() >= sizeof addr.sun_path) return make_error(ENAMETOOLONG, "api socket path {}", socket);
  std::memcpy(addr.sun_path, socket.data(), socket.size());
  UniqueFd fd(::socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0));
  if (!fd.valid()) return errno_error("socket");
  if (::connect(fd.get(), reinterpret_cast<const sockaddr*>(&addr), sizeof addr) < 0) return errno_error("connect to {}", socket);
  std::string req = fmt::format("{} {} HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n", method, path);
  if (!body.empty()) req += fmt::format("Content-Type: application/json\r\nContent-Length: {}\r\n", body.size());
  req += "\r\n";
  req += body;
  for (std::string_view out = req; !out.empty();) {
    ssize_t n = ::send(fd.get(), out.data(), out.size(), MSG_NOSIGNAL);
    if (n < 0 && errno == EINTR) continue;
    if (n <= 0) return errno_error("sending to {}", socket);
    out.remove_prefix(size_t(n));
  }
  const auto deadline = std::chrono::steady_clock::now() + timeout;
  std::string in;
  for (;;) {
    const auto left = std::chrono::duration_cast<std::chrono::milliseconds>(deadline - std::chrono::steady_clock::now());
    pollfd p{fd.get(), POLLIN, 0};
    const int r = ::poll(&p, 1, int(std::max<long>(0, left.count())));
    if (r < 0 && errno == EINTR) continue;
    if (r < 0) return errno_error("waiting for {}", socket);
    if (r == 0) return make_error(ETIMEDOUT, "{} did not answer within {} ms", socket, timeout.count());
    char buf[4096];
    ssize_t n = ::recv(fd.get(), buf, sizeof buf, 0);
    if (n < 0 && errno == EINTR) continue;
    if (n < 0) return errno_error("reading from {}", socket);
    if (n == 0) break;
    if (in.size() + size_t(n) > (2u << 20)) return make_error(EMSGSIZE, "{} answered more than 2 MiB", socket);
    in.append(buf, size_t(n));
  }
  return parse_response(in);
}

}  // namespace evmm::api
