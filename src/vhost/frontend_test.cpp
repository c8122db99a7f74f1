// The frontend against a backend that misbehaves: the test plays the backend on a socketpair and
// has its (bad) reply waiting before the frontend asks. Each mistake has its errno, breaks the
// connection (nothing more is sent on it) and is counted; a nack does neither.
#include "vhost/frontend.h"

#include <gtest/gtest.h>

#include <fcntl.h>
#include <poll.h>
#include <sys/mman.h>
#include <sys/socket.h>
#include <unistd.h>

#include <cstring>

#include "devices/virtio/virtio_abi.h"

namespace evmm::vhost {
namespace {

struct ScriptedBackend {
  UniqueFd sock;
  std::unique_ptr<Frontend> fe;
  explicit ScriptedBackend(int timeout_ms = 2000) {
    int sv[2];
    EXPECT_EQ(::socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, sv), 0);
    sock = UniqueFd(sv[0]);
    fe = Frontend::over(UniqueFd(sv[1]), timeout_ms).value();
  }
  void reply(uint32_t request, uint32_t flags, std::vector<uint8_t> payload, int fd = -1) {
    Header h{request, flags, static_cast<uint32_t>(payload.size())};
    std::vector<int> fds;
    if (fd >= 0) fds.push_back(fd);
    ASSERT_TRUE(send_message(sock.get(), h, payload, fds));
  }
  void reply_u64(Request r, uint64_t v) { reply(static_cast<uint32_t>(r), kVersion | kFlagReply, pack(v)); }
  // Reads everything the frontend sent so far and returns the request codes.
  std::vector<uint32_t> requests() {
    std::vector<uint32_t> out;
    while (true) {
      pollfd p{sock.get(), POLLIN, 0};
      if (::poll(&p, 1, 0) != 1) break;
      auto f = read_frame(sock.get());
      if (!f) break;
      out.push_back(f->header.request);
    }
    return out;
  }
};

constexpr uint64_t kOffered = (1ull << VIRTIO_F_VERSION_1) | kFeatureProtocolFeatures;

int negotiate_errno(ScriptedBackend& b) {
  auto r = b.fe->negotiate(0);
  return r ? 0 : r.error().code();
}

TEST(VhostUserFrontend, EachBadReplyHasItsErrnoAndBreaksTheConnection) {
  const uint32_t get_features = static_cast<uint32_t>(Request::GetFeatures);
  std::vector<uint8_t> eight(8);
  {
    ScriptedBackend b;
    b.reply(get_features, kVersion, eight);  // no reply bit
    EXPECT_EQ(negotiate_errno(b), EPROTO);
    EXPECT_TRUE(b.fe->broken());
    EXPECT_EQ(b.fe->bad_replies(), 1u);
    // Nothing more goes out on a broken connection.
    EXPECT_EQ(b.fe->stop_ring(0).error().code(), ENOTCONN);
    EXPECT_EQ(b.requests(), (std::vector<uint32_t>{3, get_features}));  // SET_OWNER, GET_FEATURES
  }
  {
    ScriptedBackend b;
    b.reply(static_cast<uint32_t>(Request::GetQueueNum), kVersion | kFlagReply, eight);  // another request's
    EXPECT_EQ(negotiate_errno(b), EBADMSG);
  }
  {
    ScriptedBackend b;
    b.reply(get_features, kVersion | kFlagReply, std::vector<uint8_t>(4));  // short
    EXPECT_EQ(negotiate_errno(b), EMSGSIZE);
  }
  {
    ScriptedBackend b;
    int p[2];
    ASSERT_EQ(::pipe2(p, O_CLOEXEC), 0);
    UniqueFd r(p[0]), w(p[1]);
    b.reply(get_features, kVersion | kFlagReply, eight, r.get());  // an fd with a reply
    EXPECT_EQ(negotiate_errno(b), EBADMSG);
  }
  {
    ScriptedBackend b;
    b.reply_u64(Request::GetFeatures, 1ull << VIRTIO_F_VERSION_1);  // no PROTOCOL_FEATURES
    EXPECT_EQ(negotiate_errno(b), EREMOTEIO);
  }
}

TEST(VhostUserFrontend, ABackendThatIsSilentOrGoneIsAnErrorNotAHang) {
  {
    ScriptedBackend b(100);
    EXPECT_EQ(negotiate_errno(b), ETIMEDOUT);
    EXPECT_TRUE(b.fe->broken());
  }
  {
    ScriptedBackend b;
    // Half a reply header, then the backend stops sending.
    ASSERT_EQ(::write(b.sock.get(), "\x01\x00\x00", 3), 3);
    ASSERT_EQ(::shutdown(b.sock.get(), SHUT_WR), 0);
    auto r = b.fe->negotiate(0);
    ASSERT_FALSE(r);
    EXPECT_EQ(r.error().code(), ECONNRESET);
    EXPECT_NE(r.error().message().find("mid-message"), std::string::npos) << r.error().message();
  }
  {
    ScriptedBackend b;
    b.sock.reset();  // gone before the first request
    auto r = b.fe->negotiate(0);
    ASSERT_FALSE(r);
    EXPECT_EQ(r.error().code(), ECONNRESET) << r.error().message();
    EXPECT_TRUE(b.fe->broken());
  }
}

TEST(VhostUserFrontend, ANackIsAnErrorThatKeepsTheConnection) {
  ScriptedBackend b;
  b.reply_u64(Request::GetFeatures, kOffered);
  b.reply_u64(Request::GetProtocolFeatures, 1ull << kProtoReplyAck);
  ASSERT_TRUE(b.fe->negotiate(0));
  b.requests();
  EXPECT_EQ(b.fe->acked_features(), kOffered);
  EXPECT_EQ(b.fe->protocol_features(), 1ull << kProtoReplyAck);
  // REPLY_ACK is on: SET_VRING_NUM waits for its ack, and a nack is EREMOTEIO.
  b.reply_u64(Request::SetVringNum, 1);
  Frontend::Ring ring{8, 0x1000, 0x2000, 0x3000, 0, 0, 1, 0x3000};
  auto r = b.fe->start_ring(0, ring);
  ASSERT_FALSE(r);
  EXPECT_EQ(r.error().code(), EREMOTEIO);
  EXPECT_FALSE(b.fe->broken());
  EXPECT_EQ(b.fe->bad_replies(), 0u);
}

// SET_LOG_BASE waits for the backend's answer: libvhost-user's u64, or an empty one; anything else
// breaks the connection. A backend without LOG_SHMFD and LOG_ALL is never asked.
TEST(VhostUserFrontend, DirtyLogNeedsTheBackendsOfferAndItsAnswer) {
  const uint32_t set_log_base = static_cast<uint32_t>(Request::SetLogBase);
  auto logging_backend = [](ScriptedBackend& b) {
    b.reply_u64(Request::GetFeatures, kOffered | kFeatureLogAll);
    b.reply_u64(Request::GetProtocolFeatures, 1ull << kProtoLogShmfd);
    ASSERT_TRUE(b.fe->negotiate(0));
    ASSERT_TRUE(b.fe->can_log());
  };
  UniqueFd log(::memfd_create("log", MFD_CLOEXEC));
  {
    ScriptedBackend b;
    b.reply_u64(Request::GetFeatures, kOffered);
    b.reply_u64(Request::GetProtocolFeatures, 1ull << kProtoLogShmfd);
    ASSERT_TRUE(b.fe->negotiate(0));
    EXPECT_FALSE(b.fe->can_log());
    (void)b.requests();
    EXPECT_EQ(b.fe->set_log_base(log.get(), 4096).error().code(), EOPNOTSUPP);
    EXPECT_EQ(b.fe->set_logging(true).error().code(), EOPNOTSUPP);
    EXPECT_TRUE(b.requests().empty());
    EXPECT_FALSE(b.fe->broken());
  }
  for (size_t answer : {0u, 8u}) {
    ScriptedBackend b;
    logging_backend(b);
    (void)b.requests();
    b.reply(set_log_base, kVersion | kFlagReply, std::vector<uint8_t>(answer));
    ASSERT_TRUE(b.fe->set_log_base(log.get(), 4096)) << answer;
    ASSERT_TRUE(b.fe->set_logging(true));
    EXPECT_TRUE(b.fe->acked_features() & kFeatureLogAll);
    EXPECT_EQ(b.requests(), (std::vector<uint32_t>{set_log_base, static_cast<uint32_t>(Request::SetFeatures)}));
    ASSERT_TRUE(b.fe->set_logging(false));
    EXPECT_FALSE(b.fe->acked_features() & kFeatureLogAll);
  }
  {
    ScriptedBackend b;
    logging_backend(b);
    b.reply(set_log_base, kVersion | kFlagReply, std::vector<uint8_t>(4));
    auto r = b.fe->set_log_base(log.get(), 4096);
    ASSERT_FALSE(r);
    EXPECT_EQ(r.error().code(), EMSGSIZE);
    EXPECT_TRUE(b.fe->broken());
  }
  {
    ScriptedBackend b(200);
    logging_backend(b);
    auto r = b.fe->set_log_base(log.get(), 4096);  // no answer at all
    ASSERT_FALSE(r);
    EXPECT_EQ(r.error().code(), ETIMEDOUT);
    EXPECT_TRUE(b.fe->broken());
  }
}

}  // namespace
}  // namespace evmm::vhost
