// The vhost-user message checks (vhost_user.h): one errno per kind of mistake, and read_frame on a
// real stream socket, including the largest messages a frontend may send.
#include "vhost/vhost_user.h"

#include <gtest/gtest.h>

#include <sys/socket.h>
#include <unistd.h>

#include <cstring>

namespace evmm::vhost {
namespace {

int parse_errno(Request r, std::vector<uint8_t> payload, size_t nfds = 0, uint32_t flags = kVersion) {
  Header h{static_cast<uint32_t>(r), flags, static_cast<uint32_t>(payload.size())};
  std::vector<UniqueFd> fds(nfds);
  auto m = parse_message(h, payload, std::move(fds));
  return m ? 0 : m.error().code();
}

TEST(VhostUserMessage, EachMistakeHasItsOwnErrno) {
  EXPECT_EQ(parse_errno(Request::SetVringNum, pack(uint32_t{0}, uint32_t{4})), 0);
  EXPECT_EQ(parse_errno(Request::SetVringNum, pack(uint32_t{0}, uint32_t{4}), 0, 2), EPROTO);
  EXPECT_EQ(parse_errno(Request::SetVringNum, pack(uint32_t{0}, uint32_t{4}), 0, kVersion | kFlagReply), EPROTO);
  EXPECT_EQ(parse_errno(static_cast<Request>(1000), {}), ENOSYS);
  EXPECT_EQ(parse_errno(Request::SetVringNum, pack(uint32_t{0})), EMSGSIZE);
  EXPECT_EQ(parse_errno(Request::SetVringNum, pack(uint32_t{0}, uint32_t{4}), 1), EBADMSG);
  EXPECT_EQ(parse_errno(Request::SetVringKick, pack(uint64_t{0})), EBADMSG);        // says an fd, has none
  EXPECT_EQ(parse_errno(Request::SetVringKick, pack(kVringNoFd), 1), EBADMSG);       // says none, has one
  EXPECT_EQ(parse_errno(Request::SetVringKick, pack(uint64_t{1} << 9), 1), EINVAL);  // unknown bits
  EXPECT_EQ(parse_errno(Request::SetVringNum, pack(kMaxQueues, uint32_t{4})), EINVAL);
  // A memory region that wraps, and one that is empty.
  EXPECT_EQ(parse_errno(Request::SetMemTable, pack(uint32_t{1}, uint32_t{0}, ~0ull - 4095, uint64_t{8192},
                                                    uint64_t{0x7f0000000000}, uint64_t{0}), 1),
            EINVAL);
  EXPECT_EQ(parse_errno(Request::SetMemTable, pack(uint32_t{1}, uint32_t{0}, uint64_t{0}, uint64_t{0},
                                                    uint64_t{0x7f0000000000}, uint64_t{0}), 1),
            EINVAL);
  // A config access beyond the 256-byte space.
  EXPECT_EQ(parse_errno(Request::GetConfig, pack(uint32_t{250}, uint32_t{8}, uint32_t{0}, uint64_t{0})), EINVAL);
}

// Sends a header and payload as a frontend would and reads it back with read_frame.
Result<Frame> round_trip(Request r, std::vector<uint8_t> payload) {
  int sv[2];
  if (::socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, sv) != 0) return errno_error("socketpair");
  UniqueFd a(sv[0]), b(sv[1]);
  Header h{static_cast<uint32_t>(r), kVersion, static_cast<uint32_t>(payload.size())};
  std::vector<uint8_t> bytes(sizeof h);
  std::memcpy(bytes.data(), &h, sizeof h);
  bytes.insert(bytes.end(), payload.begin(), payload.end());
  if (::write(a.get(), bytes.data(), bytes.size()) != ssize_t(bytes.size())) return errno_error("write");
  return read_frame(b.get());
}

TEST(VhostUserMessage, TheLargestMessagesAreReadWhole) {
  // A whole 256-byte config space (12 + 256 bytes of payload) and a full memory table (8 + 8 * 32).
  auto config = pack(uint32_t{0}, kMaxConfig, uint32_t{0});
  config.resize(12 + kMaxConfig, 0xab);
  auto f = round_trip(Request::SetConfig, config);
  ASSERT_TRUE(f) << f.error().message();
  EXPECT_EQ(f->payload.size(), 12 + kMaxConfig);
  auto m = parse_message(f->header, f->payload, std::move(f->fds));
  ASSERT_TRUE(m) << m.error().message();
  EXPECT_EQ(std::get<ConfigAccess>(m->payload).data.size(), kMaxConfig);

  std::vector<uint8_t> table(8 + kMaxMemTableRegions * 32, 0);
  f = round_trip(Request::SetMemTable, table);
  ASSERT_TRUE(f) << f.error().message();
  EXPECT_EQ(f->payload.size(), table.size());

  // One byte more than any request carries cannot be skipped safely: refused before it is read.
  f = round_trip(Request::SetConfig, std::vector<uint8_t>(kMaxPayload + 1));
  ASSERT_FALSE(f);
  EXPECT_EQ(f.error().code(), EMSGSIZE);
}

}  // namespace
}  // namespace evmm::vhost
