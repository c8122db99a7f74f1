// The API socket: mode 0600, keep-alive and pipelined requests, malformed and oversized requests,
// a silent client timed out, the connection limit, and the path removed when the server stops.
#include "api/api_server.h"

#include <poll.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <sys/wait.h>
#include <unistd.h>

#include <gtest/gtest.h>

#include <cstring>
#include <vector>

namespace evmm::api {
namespace {

std::string socket_path() { return "/tmp/evmm-api-test-" + std::to_string(::getpid()) + ".sock"; }

UniqueFd connect_to(const std::string& path) {
  UniqueFd fd(::socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0));
  sockaddr_un addr{};
  addr.sun_family = AF_UNIX;
  std::memcpy(addr.sun_path, path.data(), path.size());
  EXPECT_EQ(::connect(fd.get(), reinterpret_cast<const sockaddr*>(&addr), sizeof addr), 0) << std::strerror(errno);
  return fd;
}

// Everything the server sends until it has sent `responses` whole responses or closes (or 5 s pass).
std::string read_responses(int fd, size_t responses) {
  std::string in;
  for (;;) {
    size_t whole = 0, at = 0;
    for (;;) {
      const size_t head = in.find("\r\n\r\n", at);
      if (head == std::string::npos) break;
      const size_t cl = in.find("Content-Length: ", at);
      const size_t len = cl != std::string::npos && cl < head ? std::stoul(in.substr(cl + 16)) : 0;
      if (in.size() < head + 4 + len) break;
      at = head + 4 + len;
      ++whole;
    }
    if (whole >= responses) return in;
    pollfd p{fd, POLLIN, 0};
    if (::poll(&p, 1, 5000) != 1) return in;
    char buf[4096];
    ssize_t n = ::recv(fd, buf, sizeof buf, 0);
    if (n <= 0) return in;
    in.append(buf, size_t(n));
  }
}

bool closed_by_peer(int fd) {
  pollfd p{fd, POLLIN, 0};
  if (::poll(&p, 1, 5000) != 1) return false;
  char c;
  return ::recv(fd, &c, 1, 0) == 0;
}

class ApiServerTest : public ::testing::Test {
 protected:
  void SetUp() override {
    ::unlink(path.c_str());
    ApiServer::Options o;
    o.request_timeout = std::chrono::milliseconds(300);
    server = ApiServer::start(
                 path,
                 [this](const HttpRequest& r) {
                   seen.push_back(r.method + " " + r.path + " " + r.body);
                   return ApiResponse{r.method == "GET" ? 200 : 204, r.method == "GET" ? R"({"ok":true})" : ""};
                 },
                 o)
                 .value();
  }
  void TearDown() override { server.reset(); }

  const std::string path = socket_path();
  std::vector<std::string> seen;  // written on the server thread; read after a response arrived
  std::unique_ptr<ApiServer> server;
};

TEST_F(ApiServerTest, TheSocketIsOursAloneAndGoesWithTheServer) {
  struct stat st;
  ASSERT_EQ(::stat(path.c_str(), &st), 0);
  EXPECT_TRUE(S_ISSOCK(st.st_mode));
  EXPECT_EQ(st.st_mode & 0777, 0600u);
  // A second server on the same path is refused, as Firecracker refuses it.
  EXPECT_EQ(ApiServer::start(path, [](const HttpRequest&) { return ApiResponse{204, ""}; }).error().code(), EADDRINUSE);
  server.reset();
  EXPECT_NE(::stat(path.c_str(), &st), 0);
}

// The mode keeps other users out; should it be loosened, SO_PEERCRED still does.
TEST_F(ApiServerTest, APeerOfAnotherUidIsClosedUnanswered) {
  if (::geteuid() != 0) GTEST_SKIP() << "needs root to connect as another uid";
  ASSERT_EQ(::chmod(path.c_str(), 0666), 0);
  const pid_t child = ::fork();
  if (child == 0) {
    // nobody: connect, send a request, and report whether the server closed without a byte.
    if (::setgid(65534) != 0 || ::setuid(65534) != 0) ::_exit(2);
    UniqueFd c(::socket(AF_UNIX, SOCK_STREAM, 0));
    sockaddr_un addr{};
    addr.sun_family = AF_UNIX;
    std::memcpy(addr.sun_path, path.data(), path.size());
    if (::connect(c.get(), reinterpret_cast<const sockaddr*>(&addr), sizeof addr) != 0) ::_exit(3);
    (void)!::send(c.get(), "GET / HTTP/1.1\r\n\r\n", 18, MSG_NOSIGNAL);
    pollfd p{c.get(), POLLIN, 0};
    char b;
    ::_exit(::poll(&p, 1, 5000) == 1 && ::recv(c.get(), &b, 1, 0) <= 0 ? 0 : 4);
  }
  int status = 0;
  ASSERT_EQ(::waitpid(child, &status, 0), child);
  EXPECT_TRUE(WIFEXITED(status) && WEXITSTATUS(status) == 0) << status;
  EXPECT_EQ(server->stats().refused_peers.load(), 1u);
  EXPECT_TRUE(seen.empty());
}

TEST(ApiServer, AThreadSetupThatFailsFailsTheStartAndLeavesNoSocket) {
  const std::string p = socket_path() + ".setup";
  ApiServer::Options o;
  o.thread_setup = [] { return Result<void>(make_error(EPERM, "no filter")); };
  auto s = ApiServer::start(p, [](const HttpRequest&) { return ApiResponse{204, ""}; }, o);
  ASSERT_FALSE(s);
  EXPECT_EQ(s.error().code(), EPERM);
  struct stat st;
  EXPECT_NE(::stat(p.c_str(), &st), 0);
}

TEST_F(ApiServerTest, KeepAliveAndPipelinedRequestsAreAnsweredInOrder) {
  UniqueFd c = connect_to(path);
  const std::string two = "PUT /a HTTP/1.1\r\nContent-Length: 2\r\n\r\n{}GET /b HTTP/1.1\r\n\r\n";
  ASSERT_EQ(::send(c.get(), two.data(), two.size(), 0), ssize_t(two.size()));
  const std::string out = read_responses(c.get(), 2);
  EXPECT_EQ(out, "HTTP/1.1 204 No Content\r\nServer: evmm\r\nContent-Length: 0\r\n\r\n"
                 "HTTP/1.1 200 OK\r\nServer: evmm\r\nContent-Type: application/json\r\nContent-Length: 11\r\n\r\n"
                 R"({"ok":true})");
  EXPECT_EQ(seen, (std::vector<std::string>{"PUT /a {}", "GET /b "}));
  // The same connection goes on; a request split across writes is put together.
  ASSERT_EQ(::send(c.get(), "GET /c HT", 9, 0), 9);
  ::usleep(20000);
  ASSERT_EQ(::send(c.get(), "TP/1.1\r\nConnection: close\r\n\r\n", 29, 0), 29);
  EXPECT_NE(read_responses(c.get(), 1).find("Connection: close"), std::string::npos);
  EXPECT_TRUE(closed_by_peer(c.get()));
  EXPECT_EQ(server->stats().requests.load(), 3u);
}

TEST_F(ApiServerTest, AMalformedRequestIsAnsweredAndTheConnectionClosed) {
  UniqueFd c = connect_to(path);
  const std::string bad = "PUT /a HTTP/1.1\r\nContent-Length: 99999\r\n\r\n";
  ASSERT_EQ(::send(c.get(), bad.data(), bad.size(), 0), ssize_t(bad.size()));
  const std::string out = read_responses(c.get(), 1);
  EXPECT_TRUE(out.starts_with("HTTP/1.1 413 Payload Too Large\r\n")) << out;
  EXPECT_NE(out.find(R"({"fault_message":"a body of 99999 bytes is over the limit of 51200"})"), std::string::npos) << out;
  EXPECT_TRUE(closed_by_peer(c.get()));
  EXPECT_TRUE(seen.empty());
  EXPECT_EQ(server->stats().bad_requests.load(), 1u);
}

TEST_F(ApiServerTest, AClientThatStopsMidRequestTimesOut) {
  UniqueFd c = connect_to(path);
  ASSERT_EQ(::send(c.get(), "GET / HTTP/1.1\r\n", 16, 0), 16);
  const std::string out = read_responses(c.get(), 1);
  EXPECT_TRUE(out.starts_with("HTTP/1.1 408 Request Timeout\r\n")) << out;
  EXPECT_TRUE(closed_by_peer(c.get()));
  EXPECT_EQ(server->stats().timeouts.load(), 1u);
  // Others are served meanwhile and after.
  UniqueFd d = connect_to(path);
  ASSERT_EQ(::send(d.get(), "GET / HTTP/1.1\r\n\r\n", 18, 0), 18);
  EXPECT_TRUE(read_responses(d.get(), 1).starts_with("HTTP/1.1 200 OK"));
}

TEST_F(ApiServerTest, ConnectionsBeyondTheLimitAreTurnedAway) {
  std::vector<UniqueFd> held;
  for (size_t i = 0; i < ApiServer::kMaxConnections; ++i) {
    held.push_back(connect_to(path));
    // Answered: the server has taken this connection before the next one comes.
    ASSERT_EQ(::send(held.back().get(), "GET / HTTP/1.1\r\n\r\n", 18, 0), 18);
    ASSERT_TRUE(read_responses(held.back().get(), 1).starts_with("HTTP/1.1 200")) << i;
  }
  UniqueFd extra = connect_to(path);
  EXPECT_TRUE(read_responses(extra.get(), 1).starts_with("HTTP/1.1 503 Service Unavailable"));
  EXPECT_TRUE(closed_by_peer(extra.get()));
  EXPECT_EQ(server->stats().refused_peers.load(), 1u);
}

}  // namespace
}  // namespace evmm::api
