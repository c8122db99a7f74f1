// The vhost-user backend against a scripted frontend on a socketpair: negotiation, a request served
// through a ring in a memfd the "frontend" shares, and malformed input. The real frontend (QEMU) is
// in tests/vhost_user_qemu_test.cpp.
#include "vhost/backend.h"

#include <sys/eventfd.h>
#include <sys/mman.h>
#include <sys/socket.h>
#include <unistd.h>

#include <gtest/gtest.h>

#include <array>
#include <cstring>

#include "devices/virtio/rng/rng.h"

namespace evmm::vhost {
namespace {

struct TestFrontend {
  UniqueFd sock;
  Result<void> send(Request r, std::vector<uint8_t> payload, std::vector<int> fds = {}, uint32_t flags = kVersion) {
    return send_message(sock.get(), Header{static_cast<uint32_t>(r), flags, static_cast<uint32_t>(payload.size())}, payload,
                        fds);
  }
  // A reply's payload (checks its header names the request and has the reply flag).
  std::vector<uint8_t> reply(Request r) {
    Header h{};
    EXPECT_EQ(::recv(sock.get(), &h, sizeof h, MSG_WAITALL), ssize_t(sizeof h));
    EXPECT_EQ(h.request, static_cast<uint32_t>(r));
    EXPECT_EQ(h.flags, kVersion | kFlagReply);
    std::vector<uint8_t> p(h.size);
    if (h.size) {
      EXPECT_EQ(::recv(sock.get(), p.data(), p.size(), MSG_WAITALL), ssize_t(p.size()));
    }
    return p;
  }
  uint64_t reply_u64(Request r) {
    auto p = reply(r);
    uint64_t v = ~0ull;
    if (p.size() == 8) std::memcpy(&v, p.data(), 8);
    return v;
  }
};

std::vector<uint8_t> u64(uint64_t v) { return pack(v); }

class BackendTest : public ::testing::Test {
 protected:
  void SetUp() override {
    int sv[2];
    ASSERT_EQ(::socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, sv), 0);
    fe.sock = UniqueFd(sv[0]);
    device = virtio::RngDevice::create({}).value();
    backend = Backend::create(device, UniqueFd(sv[1]));
    loop = EventLoop::create().value();
    ASSERT_TRUE(loop->add(backend));
  }
  // Lets the backend handle everything sent so far.
  void pump() {
    while (loop->run_once(50).value_or(0) > 0) {
    }
  }

  TestFrontend fe;
  std::shared_ptr<virtio::RngDevice> device;
  std::shared_ptr<Backend> backend;
  std::unique_ptr<EventLoop> loop;
};

TEST_F(BackendTest, NegotiatesFeaturesAndRefusesWhatWasNotOffered) {
  ASSERT_TRUE(fe.send(Request::GetFeatures, {}));
  pump();
  const uint64_t features = fe.reply_u64(Request::GetFeatures);
  EXPECT_TRUE(features & (1ull << 32));          // VERSION_1
  EXPECT_TRUE(features & kFeatureProtocolFeatures);
  ASSERT_TRUE(fe.send(Request::GetProtocolFeatures, {}));
  pump();
  const uint64_t proto = fe.reply_u64(Request::GetProtocolFeatures);
  EXPECT_TRUE(proto & (1ull << kProtoReplyAck));
  EXPECT_FALSE(proto & (1ull << kProtoConfig));  // rng has no config space
  ASSERT_TRUE(fe.send(Request::SetProtocolFeatures, u64(1ull << kProtoReplyAck)));
  ASSERT_TRUE(fe.send(Request::GetQueueNum, {}));
  pump();
  EXPECT_EQ(fe.reply_u64(Request::GetQueueNum), 1u);
  // With REPLY_ACK, a refused request answers 1 and a good one 0.
  ASSERT_TRUE(fe.send(Request::SetFeatures, u64(1ull << 5), {}, kVersion | kFlagNeedReply));
  pump();
  EXPECT_EQ(fe.reply_u64(Request::SetFeatures), 1u);
  ASSERT_TRUE(fe.send(Request::SetFeatures, u64(1ull << 32), {}, kVersion | kFlagNeedReply));
  pump();
  EXPECT_EQ(fe.reply_u64(Request::SetFeatures), 0u);
  EXPECT_EQ(backend->acked_features(), 1ull << 32);
  EXPECT_EQ(backend->stats().bad_messages.load(), 1u);
  EXPECT_FALSE(backend->finished());
}

// The frontend's "guest memory": a memfd it also maps, at guest address kGpa. A ring of 4 at offsets
// 0 (descriptors), 0x100 (avail) and 0x200 (used); descriptor 0 is a 64-byte writable buffer at 0x1000.
struct FrontendRam {
  static constexpr uint64_t kGpa = 0x100000, kSize = 0x10000, kUser = 0x7f0000000000;
  UniqueFd mem{::memfd_create("frontend-ram", MFD_CLOEXEC)};
  UniqueFd kick{::eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK)}, call{::eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK)};
  uint8_t* ram = nullptr;

  FrontendRam() {
    if (::ftruncate(mem.get(), kSize) != 0) return;
    void* p = ::mmap(nullptr, kSize, PROT_READ | PROT_WRITE, MAP_SHARED, mem.get(), 0);
    if (p == MAP_FAILED) return;
    ram = static_cast<uint8_t*>(p);
    auto desc = pack(uint64_t{kGpa + 0x1000}, uint32_t{64}, uint16_t{2 /* WRITE */}, uint16_t{0});
    std::memcpy(ram, desc.data(), desc.size());
  }
  ~FrontendRam() {
    if (ram) ::munmap(ram, kSize);
  }
  // Makes head 0 available in avail slot `slot` and publishes avail index slot + 1.
  void offer(uint16_t slot) {
    auto entry = pack(uint16_t{0});
    std::memcpy(ram + 0x104 + 2 * slot, entry.data(), 2);
    auto idx = pack(uint16_t(slot + 1));
    std::memcpy(ram + 0x102, idx.data(), 2);
  }
  void kick_ring() const {
    const uint64_t one = 1;
    (void)!::write(kick.get(), &one, 8);
  }
  uint16_t used_idx() const {
    uint16_t v;
    std::memcpy(&v, ram + 0x202, 2);
    return v;
  }
  // The table and ring 0 (size, base, address, kick, call), with features and protocol features.
  void set_up(TestFrontend& fe, uint64_t features) const {
    ASSERT_TRUE(fe.send(Request::SetOwner, {}));
    ASSERT_TRUE(fe.send(Request::SetFeatures, u64(features | kFeatureProtocolFeatures)));
    auto table = pack(uint32_t{1}, uint32_t{0}, kGpa, kSize, kUser, uint64_t{0});
    ASSERT_TRUE(fe.send(Request::SetMemTable, table, {mem.get()}));
    ASSERT_TRUE(fe.send(Request::SetVringNum, pack(uint32_t{0}, uint32_t{4})));
    ASSERT_TRUE(fe.send(Request::SetVringBase, pack(uint32_t{0}, uint32_t{0})));
    ASSERT_TRUE(fe.send(Request::SetVringAddr,
                        pack(uint32_t{0}, uint32_t{0}, kUser, kUser + 0x200, kUser + 0x100, uint64_t{0})));
    ASSERT_TRUE(fe.send(Request::SetVringKick, u64(0), {kick.get()}));
    ASSERT_TRUE(fe.send(Request::SetVringCall, u64(0), {call.get()}));
  }
};

TEST_F(BackendTest, ServesARequestThroughTheFrontendsRingAndSignalsItsCallFd) {
  FrontendRam r;
  ASSERT_NE(r.ram, nullptr);
  uint8_t* ram = r.ram;
  r.offer(0);
  r.set_up(fe, 1ull << 32);
  pump();
  // Protocol features were negotiated: the ring waits for SET_VRING_ENABLE.
  EXPECT_FALSE(backend->active());
  ASSERT_TRUE(fe.send(Request::SetVringEnable, pack(uint32_t{0}, uint32_t{1})));
  pump();
  EXPECT_TRUE(backend->active());
  r.kick_ring();
  pump();
  uint32_t used_len;
  std::memcpy(&used_len, ram + 0x208, 4);
  EXPECT_EQ(r.used_idx(), 1);
  EXPECT_EQ(used_len, 64u);
  EXPECT_EQ(device->metrics().bytes.load(), 64u);
  uint64_t calls = 0;
  EXPECT_EQ(::read(r.call.get(), &calls, 8), 8);
  EXPECT_EQ(calls, 1u);
  // Stopping the ring answers where it stopped.
  ASSERT_TRUE(fe.send(Request::GetVringBase, pack(uint32_t{0}, uint32_t{0})));
  pump();
  auto base = fe.reply(Request::GetVringBase);
  ASSERT_EQ(base.size(), 8u);
  uint32_t num;
  std::memcpy(&num, base.data() + 4, 4);
  EXPECT_EQ(num, 1u);
  EXPECT_FALSE(backend->active());
  // Started again where it stopped (as after a migration or a backend restart): the second request
  // sits in avail slot 1 and its answer goes to used slot 1.
  r.offer(1);
  ASSERT_TRUE(fe.send(Request::SetVringBase, pack(uint32_t{0}, uint32_t{1})));
  ASSERT_TRUE(fe.send(Request::SetVringKick, u64(0), {r.kick.get()}));
  ASSERT_TRUE(fe.send(Request::SetVringEnable, pack(uint32_t{0}, uint32_t{1})));
  r.kick_ring();
  pump();
  std::memcpy(&used_len, ram + 0x204 + 8 + 4, 4);
  EXPECT_EQ(r.used_idx(), 2);
  EXPECT_EQ(used_len, 64u);
  EXPECT_EQ(device->metrics().bytes.load(), 128u);
  ASSERT_TRUE(fe.send(Request::GetVringBase, pack(uint32_t{0}, uint32_t{0})));
  pump();
  base = fe.reply(Request::GetVringBase);
  ASSERT_EQ(base.size(), 8u);
  std::memcpy(&num, base.data() + 4, 4);
  EXPECT_EQ(num, 2u);
  EXPECT_EQ(backend->stats().bad_messages.load(), 0u);
}

// ADD_MEM_REG and REM_MEM_REG change the backend's address space while the ring runs: a buffer in
// a region added later is served, one in a removed region is refused and its file left untouched,
// and a region that overlaps or was never added is refused without disturbing the table.
TEST_F(BackendTest, MemoryRegionsComeAndGoWhileTheRingRuns) {
  FrontendRam r;
  ASSERT_NE(r.ram, nullptr);
  r.set_up(fe, 1ull << 32);
  ASSERT_TRUE(fe.send(Request::SetVringEnable, pack(uint32_t{0}, uint32_t{1})));
  pump();
  ASSERT_TRUE(backend->active());

  constexpr uint64_t kExtraGpa = 0x400000, kExtraUser = 0x7f1000000000;
  UniqueFd extra(::memfd_create("frontend-extra", MFD_CLOEXEC));
  ASSERT_EQ(::ftruncate(extra.get(), 0x1000), 0);
  auto region = [](uint64_t gpa, uint64_t size, uint64_t user) { return pack(uint64_t{0}, gpa, size, user, uint64_t{0}); };
  auto acked = [&](Request req, std::vector<uint8_t> payload, std::vector<int> fds) {
    EXPECT_TRUE(fe.send(req, std::move(payload), std::move(fds), kVersion | kFlagNeedReply));
    pump();
    return fe.reply_u64(req) == 0;
  };
  auto extra_bytes = [&] {
    std::array<uint8_t, 64> b{};
    EXPECT_EQ(::pread(extra.get(), b.data(), b.size(), 0), 64);
    return b;
  };
  ASSERT_TRUE(fe.send(Request::SetProtocolFeatures, u64(1ull << kProtoReplyAck)));

  // Descriptor 0 now names 64 bytes in the region to come.
  auto desc = pack(kExtraGpa, uint32_t{64}, uint16_t{2}, uint16_t{0});
  std::memcpy(r.ram, desc.data(), desc.size());
  ASSERT_TRUE(acked(Request::AddMemReg, region(kExtraGpa, 0x1000, kExtraUser), {extra.get()}));
  r.offer(0);
  r.kick_ring();
  pump();
  EXPECT_EQ(r.used_idx(), 1);
  EXPECT_EQ(device->metrics().bytes.load(), 64u);
  const auto random = extra_bytes();
  EXPECT_NE(random, (std::array<uint8_t, 64>{}));  // 512 random bits, all zero: never

  // Overlapping the ring's region, or removing what is not there: refused, the table unchanged.
  UniqueFd other(::memfd_create("frontend-other", MFD_CLOEXEC));
  ASSERT_EQ(::ftruncate(other.get(), 0x1000), 0);
  EXPECT_FALSE(acked(Request::AddMemReg, region(FrontendRam::kGpa + 0x1000, 0x1000, 0x7f2000000000), {other.get()}));
  EXPECT_FALSE(acked(Request::RemMemReg, region(0x800000, 0x1000, 0), {}));
  EXPECT_TRUE(backend->active());

  // Gone: the same request names memory the backend no longer has, and the file stays as it was.
  ASSERT_TRUE(acked(Request::RemMemReg, region(kExtraGpa, 0x1000, kExtraUser), {}));
  EXPECT_TRUE(backend->active());
  r.offer(1);
  r.kick_ring();
  pump();
  EXPECT_EQ(device->metrics().bytes.load(), 64u);
  EXPECT_EQ(extra_bytes(), random);
  EXPECT_FALSE(backend->finished());
}

// LOG_SHMFD: the frontend's log marks, in guest pages, the buffer the device wrote and the used
// ring, while LOG_ALL is on; a frontend turns it off while the ring runs, as after a migration.
TEST_F(BackendTest, DirtyLogMarksTheWrittenBufferAndTheUsedRingWhileLogAllIsOn) {
  ASSERT_TRUE(fe.send(Request::GetFeatures, {}));
  ASSERT_TRUE(fe.send(Request::GetProtocolFeatures, {}));
  pump();
  EXPECT_TRUE(fe.reply_u64(Request::GetFeatures) & kFeatureLogAll);
  EXPECT_TRUE(fe.reply_u64(Request::GetProtocolFeatures) & (1ull << kProtoLogShmfd));
  FrontendRam r;
  ASSERT_NE(r.ram, nullptr);
  r.set_up(fe, (1ull << 32) | kFeatureLogAll);
  auto log = PageLog::create(FrontendRam::kGpa + FrontendRam::kSize);
  ASSERT_TRUE(log);
  ASSERT_TRUE(fe.send(Request::SetLogBase, pack(log->size(), uint64_t{0}), {log->fd()}));
  ASSERT_TRUE(fe.send(Request::SetVringEnable, pack(uint32_t{0}, uint32_t{1})));
  pump();
  EXPECT_EQ(fe.reply_u64(Request::SetLogBase), 0u);  // the log is mapped: the frontend may go on
  ASSERT_TRUE(backend->active());
  EXPECT_TRUE(set_pages(log->take()).empty());  // nothing written yet
  r.offer(0);
  r.kick_ring();
  pump();
  ASSERT_EQ(r.used_idx(), 1);
  const uint64_t ring_page = FrontendRam::kGpa / PageLog::kPage, buffer_page = ring_page + 1;
  EXPECT_EQ(set_pages(log->take()), (std::vector<uint64_t>{ring_page, buffer_page}));
  // LOG_ALL off while the ring runs: the next request marks nothing.
  ASSERT_TRUE(fe.send(Request::SetFeatures, u64((1ull << 32) | kFeatureProtocolFeatures)));
  pump();
  r.offer(1);
  r.kick_ring();
  pump();
  ASSERT_EQ(r.used_idx(), 2);
  EXPECT_TRUE(set_pages(log->take()).empty());
  // A log past the end of its file cannot be mapped: the frontend waits for an answer that will not
  // come, so the connection ends.
  ASSERT_TRUE(fe.send(Request::SetLogBase, pack(log->size() + 4096, uint64_t{0}), {log->fd()}));
  pump();
  EXPECT_TRUE(backend->finished());
  EXPECT_NE(backend->why_finished().find("cannot answer SET_LOG_BASE"), std::string::npos) << backend->why_finished();
  EXPECT_EQ(backend->stats().bad_messages.load(), 1u);
}

TEST_F(BackendTest, MalformedMessagesAreCountedAndAnUnreadableStreamEndsTheConnection) {
  ASSERT_TRUE(fe.send(Request::SetVringNum, pack(uint32_t{0}, uint32_t{4}), {}, 2));  // version 2
  ASSERT_TRUE(fe.send(Request::SetVringNum, pack(uint32_t{0})));         // short payload
  ASSERT_TRUE(fe.send(Request::SetVringNum, pack(uint32_t{0}, uint32_t{3})));  // not a power of two
  ASSERT_TRUE(fe.send(Request::SetVringKick, u64(0)));                    // says an fd, has none
  ASSERT_TRUE(fe.send(Request::SetVringNum, pack(uint32_t{7}, uint32_t{4})));  // no ring 7
  pump();
  EXPECT_EQ(backend->stats().bad_messages.load(), 5u);
  EXPECT_FALSE(backend->finished());
  ASSERT_TRUE(fe.send(Request::GetFeatures, {}));  // still in step
  pump();
  EXPECT_NE(fe.reply_u64(Request::GetFeatures), ~0ull);
  // A size over the limit cannot be skipped: the connection ends.
  Header h{static_cast<uint32_t>(Request::SetOwner), kVersion, 1u << 20};
  ASSERT_EQ(::send(fe.sock.get(), &h, sizeof h, 0), ssize_t(sizeof h));
  pump();
  EXPECT_TRUE(backend->finished());
  EXPECT_NE(backend->why_finished().find("payload"), std::string::npos) << backend->why_finished();
}

TEST_F(BackendTest, ARequestThatWantsAnAnswerGetsOneEvenWhenMalformed) {
  ASSERT_TRUE(fe.send(Request::SetProtocolFeatures, u64(1ull << kProtoReplyAck)));
  // Asked for an ack with a short payload: nacked, and the stream stays in step.
  ASSERT_TRUE(fe.send(Request::SetVringNum, pack(uint32_t{0}), {}, kVersion | kFlagNeedReply));
  pump();
  EXPECT_EQ(fe.reply_u64(Request::SetVringNum), 1u);
  ASSERT_TRUE(fe.send(Request::SetVringNum, pack(uint32_t{0}, uint32_t{4}), {}, kVersion | kFlagNeedReply));
  pump();
  EXPECT_EQ(fe.reply_u64(Request::SetVringNum), 0u);
  // A GET_* that cannot be answered would leave the frontend waiting: the connection ends instead.
  ASSERT_TRUE(fe.send(Request::GetVringBase, pack(uint32_t{0})));
  pump();
  EXPECT_TRUE(backend->finished());
  EXPECT_NE(backend->why_finished().find("cannot answer GET_VRING_BASE"), std::string::npos) << backend->why_finished();
  EXPECT_EQ(backend->stats().bad_messages.load(), 2u);
}

TEST_F(BackendTest, AFrontendThatClosesMidMessageEndsTheConnection) {
  Header h{static_cast<uint32_t>(Request::SetFeatures), kVersion, 8};
  ASSERT_EQ(::send(fe.sock.get(), &h, sizeof h, 0), ssize_t(sizeof h));
  ASSERT_EQ(::send(fe.sock.get(), "abc", 3, 0), 3);
  fe.sock.reset();
  pump();
  EXPECT_TRUE(backend->finished());
  EXPECT_NE(backend->why_finished().find("mid-message"), std::string::npos) << backend->why_finished();
}

}  // namespace
}  // namespace evmm::vhost
