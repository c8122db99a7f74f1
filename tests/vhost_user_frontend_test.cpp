// evmm's vhost-user frontend (vhost/frontend.h) against real vhost-user-blk backends:
// qemu-storage-daemon (Debian's qemu-system-common) and `evmm device blk`. The test is the driver:
// testing/vhost_blk_driver.h, whose ring lives in a memfd it shares with the backend, so no KVM is
// needed. It writes two sectors, reads them back, flushes,
// and then checks the image from the host side. Then the same through evmm's own virtio-mmio
// transport with the backend behind it (vhost::UserDevice), driven through its registers as a guest
// driver would, and a backend that dies under it.
#include <gtest/gtest.h>
#include <signal.h>

#include "testing/virtio_driver.h"
#include "tests/kvm_test_util.h"
#include "tests/vhost_blk_peers.h"
#include "vhost/user_device.h"

namespace evmm::testing {
namespace {

// What the frontend saw of the backend, for the test to check after the backend process ended.
struct Outcome {
  std::string error;  // the first failure, if any
  uint64_t capacity = 0;
  uint8_t write_status = 0xff, read_status = 0xff, flush_status = 0xff;
  bool read_back_equal = false;
  uint16_t stopped_at = 0;
};

Outcome drive(const std::string& sock) {
  Outcome o;
  auto fail = [&](const Error& e) { o.error = e.message(); return o; };
  if (!wait_for_socket(sock)) return o.error = "the backend did not listen", o;
  auto fe = Frontend::connect(sock);
  if (!fe) return fail(fe.error());
  if (auto r = (*fe)->negotiate(1ull << VIRTIO_BLK_F_FLUSH); !r) return fail(r.error());
  auto config = (*fe)->get_config(0, 8);
  if (!config) return fail(config.error());
  std::memcpy(&o.capacity, config->data(), 8);
  BlkDriver d;
  if (auto r = d.open(**fe); !r) return fail(r.error());
  for (int i = 0; i < 1024; ++i) d.data()[i] = static_cast<uint8_t>(i * 7 + 3);
  auto w = d.request(VIRTIO_BLK_T_OUT, 2, 1024);
  if (!w) return fail(w.error());
  o.write_status = *w;
  std::memset(d.data(), 0, 1024);
  auto r = d.request(VIRTIO_BLK_T_IN, 2, 1024);
  if (!r) return fail(r.error());
  o.read_status = *r;
  o.read_back_equal = true;
  for (int i = 0; i < 1024; ++i) o.read_back_equal &= d.data()[i] == static_cast<uint8_t>(i * 7 + 3);
  auto f = d.request(VIRTIO_BLK_T_FLUSH, 0, 0);
  if (!f) return fail(f.error());
  o.flush_status = *f;
  auto stopped = (*fe)->stop_ring(0);
  if (!stopped) return fail(stopped.error());
  o.stopped_at = *stopped;
  return o;
}

void expect_served(const Outcome& o, const std::string& image) {
  EXPECT_EQ(o.error, "");
  EXPECT_EQ(o.capacity, 2048u);  // 1 MiB of 512-byte sectors
  EXPECT_EQ(o.write_status, VIRTIO_BLK_S_OK);
  EXPECT_EQ(o.read_status, VIRTIO_BLK_S_OK);
  EXPECT_EQ(o.flush_status, VIRTIO_BLK_S_OK);
  EXPECT_TRUE(o.read_back_equal);
  EXPECT_EQ(o.stopped_at, 3u);
  ASSERT_EQ(image.size(), 1u << 20);
  for (size_t i = 0; i < 1024; ++i) ASSERT_EQ(uint8_t(image[1024 + i]), uint8_t(i * 7 + 3)) << i;
  EXPECT_EQ(image.find_first_not_of('\0'), 1024u);
}

TEST(VhostUserBlkPeers, FrontendDrivesQemuStorageDaemon) {
  if (::access(kQemuStorageDaemon, X_OK) != 0) GTEST_SKIP() << kQemuStorageDaemon << " is not installed (Debian's qemu-system-common)";
  BlkScratch s;
  Outcome o;
  auto qsd = with_qemu_storage_daemon(s, [&] { o = drive(s.sock); });
  expect_served(o, slurp(s.disk));
  EXPECT_EQ(o.error, "") << qsd.err;
}

TEST(VhostUserBlkPeers, FrontendDrivesEvmmDeviceBlk) {
  BlkScratch s;
  Outcome o;
  auto dev = with_evmm_device_blk(s, [&] { o = drive(s.sock); });
  expect_served(o, slurp(s.disk));
  EXPECT_EQ(dev.exit_status, 0) << dev.err;
  EXPECT_TRUE(has(dev.err, "refused 0,")) << dev.err;
}

// Through evmm's transport: the driver speaks to the MMIO registers, the kick goes from the notify
// ioeventfd to the backend, the backend's call comes back through the device loop as an interrupt.
struct MmioOverBackend {
  std::unique_ptr<VirtioTestDriver> d;
  std::string error;
  bool needs_reset_after_death = false;
  uint64_t capacity = 0, features = 0;
  uint8_t write_status = 0xff, read_status = 0xff;
  bool read_back_equal = false, interrupted = false;

  // Waits up to 10 s for the device loop to raise the line.
  bool wait_interrupt(int before) {
    for (int i = 0; i < 1000 && d->irq->edges.load() == before; ++i) (void)d->loop->run_once(10);
    return d->irq->edges.load() > before;
  }
  uint8_t request(uint32_t type, uint64_t sector) {
    virtio_blk_outhdr hdr{type, 0, sector};
    (void)d->mem.write_obj(GuestAddress(0x200000), hdr);
    (void)d->mem.write_obj<uint8_t>(GuestAddress(0x202000), 0xff);
    const int before = d->irq->edges.load();
    d->submit(0, {{0x200000, sizeof hdr, false}, {0x201000, 1024, type == VIRTIO_BLK_T_IN}, {0x202000, 1, true}});
    d->notify(0);
    // Until the chain is used (a backend may also call when nothing is new: libvhost-user calls once
    // when it is given the call fd, for a frontend that reconnected; drivers take that as Linux does).
    const uint16_t want = uint16_t(d->used_idx(0) + 1);
    for (int i = 0; i < 1000 && d->used_idx(0) != want; ++i) (void)d->loop->run_once(10);
    wait_interrupt(before);
    interrupted = d->irq->edges.load() > before && (d->reg(VIRTIO_MMIO_INTERRUPT_STATUS) & VIRTIO_MMIO_INT_VRING);
    d->set_reg(VIRTIO_MMIO_INTERRUPT_ACK, VIRTIO_MMIO_INT_VRING | VIRTIO_MMIO_INT_CONFIG);
    if (!d->next_used(0)) return 0xfe;
    return *d->mem.read_obj<uint8_t>(GuestAddress(0x202000));
  }
  void run(const std::string& sock) {
    if (!wait_for_socket(sock)) return void(error = "the backend did not listen");
    auto dev = vhost::UserDevice::connect({.type = virtio::DeviceType::Block, .fs_tag = {}, .mac = {}, .timeout_ms = 5000}, sock);
    if (!dev) return void(error = dev.error().message());
    d = std::make_unique<VirtioTestDriver>(*dev);
    features = d->device_features();
    uint32_t lo = d->reg(0x100), hi = d->reg(0x104);
    capacity = lo | uint64_t(hi) << 32;
    const uint32_t status = d->init(1ull << VIRTIO_BLK_F_FLUSH, 1);
    if (!(status & VIRTIO_CONFIG_S_DRIVER_OK) || (status & VIRTIO_CONFIG_S_NEEDS_RESET))
      return void(error = fmt::format("status {:#x} after init", status));
    std::vector<uint8_t> pattern(1024);
    for (int i = 0; i < 1024; ++i) pattern[i] = static_cast<uint8_t>(i * 5 + 1);
    (void)d->mem.write(GuestAddress(0x201000), pattern);
    write_status = request(VIRTIO_BLK_T_OUT, 4);
    (void)d->mem.fill(GuestAddress(0x201000), 0, 1024);
    read_status = request(VIRTIO_BLK_T_IN, 4);
    std::vector<uint8_t> back(1024);
    (void)d->mem.read(GuestAddress(0x201000), back);
    read_back_equal = back == pattern;
  }
};

TEST(VhostUserBlkPeers, VirtioMmioDeviceOverQemuStorageDaemon) {
  if (::access(kQemuStorageDaemon, X_OK) != 0) GTEST_SKIP() << kQemuStorageDaemon << " is not installed (Debian's qemu-system-common)";
  BlkScratch s;
  MmioOverBackend m;
  auto qsd = with_qemu_storage_daemon(s, [&] {
    m.run(s.sock);
    if (m.d) m.d->set_reg(VIRTIO_MMIO_STATUS, 0);  // reset: the rings stop (GET_VRING_BASE) before the daemon goes
  });
  ASSERT_EQ(m.error, "") << qsd.err;
  EXPECT_EQ(m.capacity, 2048u);
  EXPECT_TRUE(m.features & (1ull << VIRTIO_BLK_F_FLUSH));
  EXPECT_FALSE(m.features & (1ull << VIRTIO_BLK_F_MQ));  // evmm keeps one queue
  EXPECT_EQ(m.write_status, VIRTIO_BLK_S_OK);
  EXPECT_EQ(m.read_status, VIRTIO_BLK_S_OK);
  EXPECT_TRUE(m.read_back_equal);
  EXPECT_TRUE(m.interrupted);
  const std::string image = slurp(s.disk);
  ASSERT_EQ(image.size(), 1u << 20);
  for (size_t i = 0; i < 1024; ++i) ASSERT_EQ(uint8_t(image[2048 + i]), uint8_t(i * 5 + 1)) << i;
}

TEST(VhostUserBlkPeers, ABackendThatDiesSetsNeedsResetAndTheVmRunsOn) {
  BlkScratch s;
  MmioOverBackend m;
  uint32_t status_after = 0;
  ProcessOptions opts;
  opts.timeout = std::chrono::seconds(60);
  opts.while_running = [&](pid_t pid) {
    m.run(s.sock);
    ::kill(pid, SIGKILL);
    if (!m.d) return;
    // The device loop sees the connection end and tells the driver with a config interrupt.
    const int before = m.d->irq->edges.load();
    m.wait_interrupt(before);
    status_after = m.d->reg(VIRTIO_MMIO_STATUS);
    // Resetting a device whose backend is gone is still answered (nothing more is sent).
    m.d->set_reg(VIRTIO_MMIO_STATUS, 0);
  };
  run_process({EVMM_BINARY, "device", "blk", "--socket", s.sock, "--disk", "path=" + s.disk}, opts);
  ASSERT_EQ(m.error, "");
  EXPECT_EQ(m.write_status, VIRTIO_BLK_S_OK);
  EXPECT_TRUE(m.read_back_equal);
  EXPECT_TRUE(status_after & VIRTIO_CONFIG_S_NEEDS_RESET) << status_after;
  EXPECT_EQ(m.d->reg(VIRTIO_MMIO_STATUS), 0u);
}

// The whole path in a VM: `evmm run --disk vhost-user=` with qemu-storage-daemon behind it, and
// evmm's test guest's virtio-blk driver in front (the same guest VhostUserQemu runs under QEMU).
TEST(VhostUserBlkPeers, GuestWritesThroughEvmmToQemuStorageDaemon) {
  REQUIRE_KVM();
  if (::access(kQemuStorageDaemon, X_OK) != 0) GTEST_SKIP() << kQemuStorageDaemon << " is not installed (Debian's qemu-system-common)";
  BlkScratch s;
  ProcessResult vm;
  auto qsd = with_qemu_storage_daemon(
      s,
      [&] {
        if (wait_for_socket(s.sock)) vm = boot("testprog.pvh.elf", "virtio", 1, {"--disk", "vhost-user=" + s.sock, "--stats"});
      },
      std::chrono::seconds(120));
  EXPECT_EQ(vm.exit_status, 1) << vm.out << vm.err << qsd.err;
  EXPECT_TRUE(has(vm.out, "virtio-blk: 2048 sectors")) << vm.out;
  EXPECT_TRUE(has(vm.out, "2 sectors written and read back equal, flush ok")) << vm.out;
  const std::string image = slurp(s.disk);
  ASSERT_EQ(image.size(), 1u << 20);
  for (size_t i = 0; i < 1024; ++i) ASSERT_EQ(uint8_t(image[1024 + i]), uint8_t(i * 7 + 3)) << i;
}

// QEMU's virtiofsd behind evmm's virtio-mmio transport: negotiation, the config space evmm makes
// (the tag and one request queue), and a driver that brings the device up with both queues; a tag
// that does not fit is refused before the device exists.
TEST(VhostUserFsPeers, VirtiofsdComesUpBehindTheTransportWithItsTag) {
  constexpr const char* kVirtiofsd = "/usr/lib/qemu/virtiofsd";
  if (::access(kVirtiofsd, X_OK) != 0) GTEST_SKIP() << kVirtiofsd << " is not installed (Debian's qemu-system-common)";
  BlkScratch s;
  const std::string share = s / "share", sock = s / "fs.sock";
  ASSERT_EQ(::mkdir(share.c_str(), 0700), 0);
  std::string error, tag;
  uint32_t requests = 0, status = 0;
  int bad_tag = 0;
  ProcessOptions opts;
  opts.timeout = std::chrono::seconds(60);
  opts.while_running = [&](pid_t pid) {
    if (!wait_for_socket(sock)) return void(error = "virtiofsd did not listen");
    auto bad = vhost::UserDevice::connect({.type = virtio::DeviceType::Fs, .fs_tag = std::string(37, 't'), .mac = {}, .timeout_ms = 5000}, sock);
    bad_tag = bad ? 0 : bad.error().code();
    ::kill(pid, SIGTERM);  // virtiofsd serves one frontend: the refused one took it
  };
  auto first = run_process({kVirtiofsd, "--socket-path=" + sock, "-o", "source=" + share, "-o", "sandbox=chroot"}, opts);
  EXPECT_EQ(bad_tag, EINVAL) << first.err;
  opts.while_running = [&](pid_t pid) {
    if (!wait_for_socket(sock)) return void(error = "virtiofsd did not listen");
    auto dev = vhost::UserDevice::connect({.type = virtio::DeviceType::Fs, .fs_tag = "evmmshare", .mac = {}, .timeout_ms = 5000}, sock);
    if (!dev) {
      error = dev.error().message();
    } else {
      VirtioTestDriver d(*dev);
      for (uint32_t i = 0; i < 36; i += 4)
        for (uint32_t w = d.reg(0x100 + i), k = 0; k < 4; ++k)
          if (char c = char(w >> (8 * k))) tag += c;
      requests = d.reg(0x100 + 36);
      status = d.init(0, 2);
    }
    ::kill(pid, SIGTERM);
  };
  ::unlink(sock.c_str());
  auto fsd = run_process({kVirtiofsd, "--socket-path=" + sock, "-o", "source=" + share, "-o", "sandbox=chroot"}, opts);
  ASSERT_EQ(error, "") << fsd.err;
  EXPECT_EQ(tag, "evmmshare");
  EXPECT_EQ(requests, 1u);
  EXPECT_TRUE(status & VIRTIO_CONFIG_S_DRIVER_OK) << std::hex << status << fsd.err;
  EXPECT_FALSE(status & VIRTIO_CONFIG_S_NEEDS_RESET) << std::hex << status;
}

}  // namespace
}  // namespace evmm::testing
