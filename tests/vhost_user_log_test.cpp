// Dirty logging through vhost-user (LOG_SHMFD and VHOST_F_LOG_ALL), what a live migration of a VM
// with an out-of-process device needs: evmm's frontend gives the backend a log (memory/page_log.h)
// and turns LOG_ALL on; each request's writes must then appear in the log as guest pages, exactly
// the pages the backend wrote (the read's data and the status byte, the used ring), and nothing once
// LOG_ALL is off again. Against qemu-storage-daemon (libvhost-user's log) and `evmm device blk`.
// The test is the driver (testing/vhost_blk_driver.h); no KVM needed.
#include <gtest/gtest.h>
#include <set>

#include "memory/page_log.h"
#include "tests/vhost_blk_peers.h"

namespace evmm::testing {
namespace {

using Pages = std::set<uint64_t>;

Pages pages_of(const std::vector<uint64_t>& words) {
  auto v = set_pages(words);
  return Pages(v.begin(), v.end());
}

struct Logged {
  std::string error;
  bool can_log = false;
  std::vector<Pages> rounds;  // after: a write, a read of two pages, a flush, a read with LOG_ALL off, one with it on again
  bool read_back_equal = false;
};

Logged drive_logged(const std::string& sock) {
  Logged o;
  auto fail = [&](const Error& e) { o.error = e.message(); return o; };
  if (!wait_for_socket(sock)) return o.error = "the backend did not listen", o;
  auto fe = Frontend::connect(sock);
  if (!fe) return fail(fe.error());
  if (auto r = (*fe)->negotiate(1ull << VIRTIO_BLK_F_FLUSH); !r) return fail(r.error());
  o.can_log = (*fe)->can_log();
  auto log = PageLog::create(BlkDriver::kRam);
  if (!log) return fail(log.error());
  BlkDriver d;
  if (auto r = d.open(**fe); !r) return fail(r.error());
  if (auto r = (*fe)->set_log_base(log->fd(), log->size()); !r) return fail(r.error());
  if (auto r = (*fe)->set_logging(true); !r) return fail(r.error());
  for (int i = 0; i < 8192; ++i) d.data()[i] = static_cast<uint8_t>(i * 7 + 3);
  auto step = [&](uint32_t type, uint32_t len) -> bool {
    auto s = d.request(type, 2, len);
    if (!s) return fail(s.error()), false;
    if (*s != VIRTIO_BLK_S_OK) return o.error = fmt::format("request {} status {}", type, *s), false;
    o.rounds.push_back(pages_of(log->take()));
    return true;
  };
  if (!step(VIRTIO_BLK_T_OUT, 8192)) return o;
  std::memset(d.data(), 0, 8192);
  if (!step(VIRTIO_BLK_T_IN, 8192) || !step(VIRTIO_BLK_T_FLUSH, 0)) return o;
  o.read_back_equal = true;
  for (int i = 0; i < 8192; ++i) o.read_back_equal &= d.data()[i] == static_cast<uint8_t>(i * 7 + 3);
  if (auto r = (*fe)->set_logging(false); !r) return fail(r.error());
  if (!step(VIRTIO_BLK_T_IN, 8192)) return o;
  if (auto r = (*fe)->set_logging(true); !r) return fail(r.error());
  if (!step(VIRTIO_BLK_T_IN, 8192)) return o;
  return o;
}

void expect_logged(const Logged& o) {
  EXPECT_EQ(o.error, "");
  EXPECT_TRUE(o.can_log);
  EXPECT_TRUE(o.read_back_equal);
  // BlkDriver's guest pages: the used ring in page 0, the status byte in page 3, data from 0x100.
  const Pages ring_and_status{0, 3}, read{0, 3, 0x100, 0x101};
  ASSERT_EQ(o.rounds.size(), 5u);
  EXPECT_EQ(o.rounds[0], ring_and_status);  // a write: the device only read the data
  EXPECT_EQ(o.rounds[1], read);
  EXPECT_EQ(o.rounds[2], ring_and_status);  // a flush
  EXPECT_EQ(o.rounds[3], Pages{});          // LOG_ALL off
  EXPECT_EQ(o.rounds[4], read);             // and on again, while the ring ran
}

TEST(VhostUserDirtyLog, QemuStorageDaemonMarksWhatItWrites) {
  if (::access(kQemuStorageDaemon, X_OK) != 0) GTEST_SKIP() << kQemuStorageDaemon << " is not installed (Debian's qemu-system-common)";
  BlkScratch s;
  Logged o;
  auto qsd = with_qemu_storage_daemon(s, [&] { o = drive_logged(s.sock); });
  expect_logged(o);
  EXPECT_EQ(o.error, "") << qsd.err;
}

TEST(VhostUserDirtyLog, EvmmDeviceBlkMarksWhatItWrites) {
  BlkScratch s;
  Logged o;
  auto dev = with_evmm_device_blk(s, [&] { o = drive_logged(s.sock); });
  expect_logged(o);
  EXPECT_EQ(dev.exit_status, 0) << dev.err;
  EXPECT_TRUE(has(dev.err, "refused 0,")) << dev.err;
}

}  // namespace
}  // namespace evmm::testing
