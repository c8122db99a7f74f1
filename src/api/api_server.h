// The control API's socket: HTTP/1.1 (api/http.h) on a Unix stream socket, one thread, each
// request handed to a handler (the Firecracker endpoints, api/firecracker_api.h).
//
// Rules:
//   - The socket is created mode 0600 and a peer whose SO_PEERCRED uid is not ours is closed
//     unanswered (counted in refused_peers): only our own user drives the VM.
//   - A path that exists is refused (EADDRINUSE), as Firecracker refuses it: an orchestrator removes
//     a stale socket itself. The server unlinks the path when it stops.
//   - Connections are persistent (keep-alive), at most kMaxConnections at once; the one over that is
//     answered 503 and closed. A request must arrive whole within request_timeout of its first
//     byte (408 otherwise); an idle connection is closed after idle_timeout.
//   - A malformed request gets its status (http.h) and the connection is closed: after a framing
//     error nothing that follows can be trusted to start a request.
//   - The handler runs on the server thread; a slow handler delays other clients, never a vCPU.
#pragma once

#include <atomic>
#include <chrono>
#include <functional>
#include <memory>
#include <string>
#include <thread>

#include <sys/types.h>

#include "api/firecracker_api.h"
#include "api/http.h"
#include "base/eventfd.h"
#include "base/fd.h"
#include "base/result.h"

namespace evmm::api {

struct ApiServerStats {
  std::atomic<uint64_t> connections{0};
  std::atomic<uint64_t> requests{0};
  std::atomic<uint64_t> bad_requests{0};   // refused by the HTTP parser (4xx/5xx before the handler)
  std::atomic<uint64_t> timeouts{0};       // 408s and idle closes
  std::atomic<uint64_t> refused_peers{0};  // another uid, or over the connection limit
};

class ApiServer {
 public:
  using Handler = std::function<ApiResponse(const HttpRequest&)>;
  struct Options {
    Limits limits;
    std::chrono::milliseconds request_timeout{5000};
    std::chrono::milliseconds idle_timeout{std::chrono::minutes(10)};
    // Runs first on the server thread (its seccomp filter); an error fails start().
    std::function<Result<void>()> thread_setup;
  };
  static constexpr size_t kMaxConnections = 16;

  // Binds and listens at path; the thread starts serving at once.
  static Result<std::unique_ptr<ApiServer>> start(const std::string& path, Handler handler, Options options);
  static Result<std::unique_ptr<ApiServer>> start(const std::string& path, Handler handler) {
    return start(path, std::move(handler), Options{});
  }
  ~ApiServer();  // stops the thread, closes every connection, unlinks the path

  const ApiServerStats& stats() const { return stats_; }

 private:
  ApiServer(std::string path, UniqueFd listener, Handler handler, Options options, EventFd stop);
  void run();

  const std::string path_;
  const uid_t uid_;  // ours: the one peer uid served (taken before the thread's filter)
  UniqueFd listener_;
  Handler handler_;
  Options options_;
  EventFd stop_;
  ApiServerStats stats_;
  std::thread thread_;
};

}  // namespace evmm::api
