// The address-space protocol: the parser's distinct errors, and export/attach between two real
// processes over a SOCK_SEQPACKET socketpair with SCM_RIGHTS, including peers that misbehave.
#include "memory/address_space_wire.h"

#include <fcntl.h>
#include <sys/mman.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <unistd.h>

#include <gtest/gtest.h>

#include <cstring>

#include "memory/address_space.h"

namespace evmm {
namespace {

constexpr uint64_t kPage = 4096;

std::vector<uint8_t> raw(uint16_t type, uint32_t count, std::vector<wire::Entry> entries, uint16_t version = wire::kVersion,
                         uint32_t magic = wire::kMagic, uint32_t reserved = 0) {
  wire::Header h{magic, version, type, count, reserved, 5};
  std::vector<uint8_t> out(sizeof h + entries.size() * sizeof(wire::Entry));
  std::memcpy(out.data(), &h, sizeof h);
  if (!entries.empty()) std::memcpy(out.data() + sizeof h, entries.data(), entries.size() * sizeof(wire::Entry));
  return out;
}

int parse_errno(const std::vector<uint8_t>& bytes, size_t nfds) {
  auto m = wire::parse(bytes, nfds);
  return m ? 0 : m.error().code();
}

TEST(AddressSpaceWire, EncodedMessagesParseBackSorted) {
  wire::Message m{wire::MsgType::Table, 9, {{GuestAddress(0x200000), kPage, 0, 0}, {GuestAddress(0), 2 * kPage, kPage, kPage}}};
  auto got = wire::parse(wire::encode(m), 3).value();  // two regions and the log
  EXPECT_EQ(got.type, wire::MsgType::Table);
  EXPECT_EQ(got.generation, 9u);
  ASSERT_EQ(got.regions.size(), 2u);
  EXPECT_EQ(got.regions[0].start, GuestAddress(0));
  EXPECT_EQ(got.regions[1].start, GuestAddress(0x200000));
  EXPECT_EQ(parse_errno(wire::encode({wire::MsgType::Ack, 3, {}}), 0), 0);
}

TEST(AddressSpaceWire, EachMistakeHasItsOwnErrno) {
  const wire::Entry ok{0x1000, kPage, 0, 0};
  EXPECT_EQ(parse_errno(raw(1, 1, {ok}), 2), 0);
  EXPECT_EQ(parse_errno(raw(1, 1, {ok}, 1, 0x12345678), 2), EPROTO);      // magic
  EXPECT_EQ(parse_errno(raw(1, 1, {ok}, 2), 2), EPROTO);                  // version
  EXPECT_EQ(parse_errno(raw(9, 1, {ok}), 2), EPROTO);                     // type
  EXPECT_EQ(parse_errno(raw(1, 1, {ok}, 1, wire::kMagic, 1), 2), EPROTO); // reserved header bits
  EXPECT_EQ(parse_errno(std::vector<uint8_t>(10), 0), EMSGSIZE);          // shorter than a header
  EXPECT_EQ(parse_errno(raw(1, 2, {ok}), 3), EMSGSIZE);                   // count says more than came
  EXPECT_EQ(parse_errno(raw(1, wire::kMaxRegions + 1, {}), 0), EMSGSIZE);
  EXPECT_EQ(parse_errno(raw(3, 2, {ok, ok}), 0), EMSGSIZE);               // remove carries one region
  EXPECT_EQ(parse_errno(raw(1, 1, {ok}), 1), EBADMSG);                    // table without the log's fd
  EXPECT_EQ(parse_errno(raw(3, 1, {ok}), 1), EBADMSG);                    // remove with an fd
  EXPECT_EQ(parse_errno(raw(2, 1, {{0x1000, 0, 0, 0}}), 1), EINVAL);      // empty
  EXPECT_EQ(parse_errno(raw(2, 1, {{0x1800, kPage, 0, 0}}), 1), EINVAL);  // misaligned
  EXPECT_EQ(parse_errno(raw(2, 1, {{0x1000, kPage, 0x10, 0}}), 1), EINVAL);
  EXPECT_EQ(parse_errno(raw(2, 1, {{0x1000, kPage, 0, 4}}), 1), EINVAL);  // log offset
  EXPECT_EQ(parse_errno(raw(2, 1, {{~0ull & ~(kPage - 1), 2 * kPage, 0, 0}}), 1), EINVAL);  // wraps
  EXPECT_EQ(parse_errno(raw(1, 2, {{0, 2 * kPage, 0, 0}, {kPage, kPage, 0, kPage}}), 3), EEXIST);
  EXPECT_EQ(parse_errno(raw(1, 2, {{0, kPage, 0, 0}, {kPage, kPage, 0, 0}}), 3), EEXIST);  // one log bitmap for two
  EXPECT_EQ(parse_errno(raw(1, 2, {{0, kPage, 0, 0}, {kPage, kPage, 0, kPage}}), 3), 0);
}

struct Pair {
  UniqueFd a, b;
};
Pair seqpacket_pair() {
  int sv[2];
  EXPECT_EQ(::socketpair(AF_UNIX, SOCK_SEQPACKET | SOCK_CLOEXEC, 0, sv), 0);
  return {UniqueFd(sv[0]), UniqueFd(sv[1])};
}

UniqueFd memfd(uint64_t bytes) {
  UniqueFd fd(::memfd_create("as-wire-test", MFD_CLOEXEC));
  EXPECT_EQ(::ftruncate(fd.get(), off_t(bytes)), 0);
  return fd;
}

// A child process attaches, reads what the parent wrote, writes an answer, then follows an added
// and a removed region, acknowledging each. Its exit status says which step failed (0: all held).
TEST(AddressSpaceExport, AnotherProcessAttachesAndFollowsChanges) {
  UniqueFd fd = memfd(8 * kPage);
  auto as = AddressSpace::create().value();
  ASSERT_TRUE(as->add_region(GuestAddress(0x100000), 2 * kPage, fd.get(), 0));
  ASSERT_TRUE(as->add_region(GuestAddress(0x200000), kPage, fd.get(), 4 * kPage));
  ASSERT_TRUE(as->write_obj<uint64_t>(GuestAddress(0x100ff8), 0x0123456789abcdefull));
  (void)as->collect_dirty();
  auto [parent_end, child_end] = seqpacket_pair();

  pid_t pid = ::fork();
  ASSERT_GE(pid, 0);
  if (pid == 0) {
    parent_end.reset();
    auto peer = AddressSpace::attach(std::move(child_end));
    if (!peer) ::_exit(10);
    auto& p = **peer;
    if (p.regions().size() != 2) ::_exit(11);
    if (p.read_obj<uint64_t>(GuestAddress(0x100ff8)).value_or(0) != 0x0123456789abcdefull) ::_exit(12);
    if (!p.write_obj<uint32_t>(GuestAddress(0x200010), 0xc0ffee)) ::_exit(13);
    if (!p.serve_peer(5000)) ::_exit(14);  // the added region
    if (p.read_obj<uint32_t>(GuestAddress(0x300000)).value_or(0) != 0x5a5a5a5a) ::_exit(15);
    if (!p.serve_peer(5000)) ::_exit(16);  // the removed region
    if (p.read_obj<uint8_t>(GuestAddress(0x200000)).error().code() != EFAULT) ::_exit(17);
    auto closed = p.serve_peer(5000);  // the parent closes its end
    ::_exit(closed || closed.error().code() != ECONNRESET ? 18 : 0);
  }
  child_end.reset();
  ASSERT_TRUE(as->export_to(std::move(parent_end)));
  ASSERT_EQ(::pwrite(fd.get(), "\x5a\x5a\x5a\x5a", 4, off_t(6 * kPage)), 4);
  ASSERT_TRUE(as->add_region(GuestAddress(0x300000), kPage, fd.get(), 6 * kPage));  // waits for the ack
  // The child wrote before it acknowledged the add.
  EXPECT_EQ(as->read_obj<uint32_t>(GuestAddress(0x200010)).value(), 0xc0ffeeu);
  // and its write is in this process's dirty log, alone.
  auto dirty = as->collect_dirty();
  ASSERT_EQ(dirty.size(), 1u);
  EXPECT_EQ(dirty[0].start, GuestAddress(0x200000));
  EXPECT_EQ(dirty[0].bitmap, std::vector<uint64_t>{1});
  ASSERT_TRUE(as->remove_region(GuestAddress(0x200000)));
  EXPECT_EQ(as->stats().peer_errors, 0u);
  as.reset();  // closes the peer's socket
  int status = 0;
  ASSERT_EQ(::waitpid(pid, &status, 0), pid);
  ASSERT_TRUE(WIFEXITED(status));
  EXPECT_EQ(WEXITSTATUS(status), 0);
}

// A peer that never acknowledges is dropped after its timeout; one that has gone is dropped at once.
// Either way the change is made here and the caller learns that a peer may still map the region.
TEST(AddressSpaceExport, SilentOrVanishedPeersAreDroppedWithAnError) {
  UniqueFd fd = memfd(2 * kPage);
  auto as = AddressSpace::create().value();
  ASSERT_TRUE(as->add_region(GuestAddress(0), kPage, fd.get(), 0));
  auto silent = seqpacket_pair();
  auto gone = seqpacket_pair();
  ASSERT_TRUE(as->export_to(std::move(silent.a), 100));
  ASSERT_TRUE(as->export_to(std::move(gone.a), 100));
  gone.b.reset();
  auto r = as->remove_region(GuestAddress(0));
  ASSERT_FALSE(r);
  EXPECT_EQ(r.error().code(), ECONNABORTED);
  EXPECT_NE(r.error().message().find("no message from the peer"), std::string::npos) << r.error().message();
  EXPECT_TRUE(as->regions().empty());
  EXPECT_EQ(as->stats().peer_errors, 2u);
  // Both are gone: the next change tells no one and succeeds.
  ASSERT_TRUE(as->add_region(GuestAddress(0), kPage, fd.get(), 0));
}

// What an attaching process refuses, each with its own error.
TEST(AddressSpaceExport, AttachRefusesBadTablesAndBadFds) {
  UniqueFd log = memfd(kPage);
  auto attach_errno = [&](const wire::Message& m, std::vector<int> fds) {
    if (m.type == wire::MsgType::Table) fds.push_back(log.get());
    auto [a, b] = seqpacket_pair();
    EXPECT_TRUE(wire::send_message(a.get(), m, fds));
    auto r = AddressSpace::attach(std::move(b), 1000);
    return r ? 0 : r.error().code();
  };
  UniqueFd fd = memfd(kPage);
  int p[2];
  ASSERT_EQ(::pipe(p), 0);
  wire::Message one{wire::MsgType::Table, 1, {{GuestAddress(0), kPage, 0}}};
  EXPECT_EQ(attach_errno(one, {fd.get()}), 0);
  EXPECT_EQ(attach_errno(one, {p[0]}), ENODEV);
  EXPECT_EQ(attach_errno({wire::MsgType::Table, 1, {{GuestAddress(0), 2 * kPage, 0}}}, {fd.get()}), ERANGE);
  EXPECT_EQ(attach_errno({wire::MsgType::Ack, 1, {}}, {}), EPROTO);  // not a table first
  {  // a log that is not a file, or too short for a region's bitmap
    auto [a, b] = seqpacket_pair();
    ASSERT_TRUE(wire::send_message(a.get(), one, std::vector<int>{fd.get(), p[1]}));
    EXPECT_EQ(AddressSpace::attach(std::move(b), 1000).error().code(), ENODEV);
    auto [c, d] = seqpacket_pair();
    ASSERT_TRUE(wire::send_message(c.get(), {wire::MsgType::Table, 1, {{GuestAddress(0), kPage, 0, kPage}}},
                                   std::vector<int>{fd.get(), log.get()}));
    EXPECT_EQ(AddressSpace::attach(std::move(d), 1000).error().code(), ERANGE);
  }
  ::close(p[0]);
  ::close(p[1]);

  {  // overlapping regions, sent raw since send_message encodes what it is given
    auto [a, b] = seqpacket_pair();
    ASSERT_TRUE(wire::send_message(a.get(),
                                   {wire::MsgType::Table, 1, {{GuestAddress(0), kPage, 0, 0}, {GuestAddress(0), kPage, 0, kPage}}},
                                   std::vector<int>{fd.get(), fd.get(), log.get()}));
    EXPECT_EQ(AddressSpace::attach(std::move(b), 1000).error().code(), EEXIST);
  }
  {  // the exporter closes before sending anything
    auto [a, b] = seqpacket_pair();
    a.reset();
    EXPECT_EQ(AddressSpace::attach(std::move(b), 1000).error().code(), ECONNRESET);
  }
  {  // or never sends
    auto [a, b] = seqpacket_pair();
    EXPECT_EQ(AddressSpace::attach(std::move(b), 50).error().code(), ETIMEDOUT);
  }
  {  // a stream socket cannot carry the protocol's datagrams
    int sv[2];
    ASSERT_EQ(::socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, sv), 0);
    UniqueFd other(sv[1]);
    EXPECT_EQ(AddressSpace::create().value()->export_to(UniqueFd(sv[0])).error().code(), EPROTOTYPE);
  }
}

}  // namespace
}  // namespace evmm
