#include "debug/gdb_server.h"

#include <arpa/inet.h>
#include <netinet/in.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <unistd.h>

#include <fstream>

#include <gtest/gtest.h>

namespace evmm {
namespace {

TEST(GdbEndpoint, DigitsAreATcpPortAnythingElseAPath) {
  auto tcp = parse_gdb_endpoint("1234");
  ASSERT_TRUE(tcp);
  EXPECT_TRUE(tcp->tcp);
  EXPECT_EQ(tcp->port, 1234);
  EXPECT_EQ(tcp->describe(), "127.0.0.1:1234");
  auto path = parse_gdb_endpoint("/tmp/evmm.sock");
  ASSERT_TRUE(path);
  EXPECT_FALSE(path->tcp);
  EXPECT_EQ(path->path, "/tmp/evmm.sock");
  // A host:port is a path too: evmm never listens anywhere but 127.0.0.1.
  EXPECT_FALSE(parse_gdb_endpoint("0.0.0.0:1234")->tcp);
  for (const char* bad : {"", "0", "65536", "99999999999999999999"})
    EXPECT_EQ(parse_gdb_endpoint(bad).error().code(), EINVAL) << bad;
  EXPECT_EQ(parse_gdb_endpoint(std::string(200, 'a')).error().code(), ENAMETOOLONG);
}

TEST(GdbEndpoint, ATcpPortListensOnLoopbackOnly) {
  // Port 1 needs privileges we may have; any free high port will do, so try a few.
  for (uint16_t port = 47000; port < 47010; ++port) {
    auto fd = gdb_listen({true, port, {}});
    if (!fd) continue;
    sockaddr_in a{};
    socklen_t len = sizeof a;
    ASSERT_EQ(::getsockname(fd->get(), reinterpret_cast<sockaddr*>(&a), &len), 0);
    EXPECT_EQ(ntohl(a.sin_addr.s_addr), INADDR_LOOPBACK);
    EXPECT_EQ(ntohs(a.sin_port), port);
    return;
  }
  GTEST_SKIP() << "no free port in 47000-47009";
}

TEST(GdbEndpoint, AUnixSocketReplacesAStaleSocketButNoOtherFile) {
  std::string path = ::testing::TempDir() + "/gdb_server_test.sock";
  ::unlink(path.c_str());
  ASSERT_TRUE(gdb_listen({false, 0, path}));
  struct stat st;
  ASSERT_EQ(::stat(path.c_str(), &st), 0);
  EXPECT_TRUE(S_ISSOCK(st.st_mode));
  // The socket left behind is replaced by the next listener.
  EXPECT_TRUE(gdb_listen({false, 0, path}));
  ::unlink(path.c_str());
  std::ofstream(path) << "keep me";
  EXPECT_EQ(gdb_listen({false, 0, path}).error().code(), EEXIST);
  ASSERT_EQ(::stat(path.c_str(), &st), 0);
  EXPECT_TRUE(S_ISREG(st.st_mode));
  ::unlink(path.c_str());
}

}  // namespace
}  // namespace evmm
