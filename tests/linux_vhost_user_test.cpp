// The small Linux guest (guests/linux/tiny.config) with its root served by another process over
// vhost-user, through evmm's frontend (vhost::UserDevice) and Linux's own drivers:
//  - an ext4 image exported by QEMU's qemu-storage-daemon as vhost-user-blk (`--disk vhost-user=`),
//    mounted read-write; the host then reads back what the guest's mount wrote;
//  - a host directory exported by QEMU's virtiofsd (`--fs vhost-user=,tag=`), mounted as the root
//    with rootfstype=virtiofs; its /sbin/init is a file the test writes just before the boot.
// User space cannot run on these hosts (DESIGN.md, "The host we run on"), so each boot ends when
// the kernel hands over to init.
#include <gtest/gtest.h>
#include <signal.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cstdint>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <random>
#include <regex>
#include <string>

#include "testing/vhost_blk_driver.h"
#include "tests/linux_boot.h"

namespace evmm::testing {
namespace {

constexpr const char* kVirtiofsd = "/usr/lib/qemu/virtiofsd";
constexpr const char* kRunInit = "Run /sbin/init as init process";

// The ext4 superblock's mount count (offset 1024 + 0x34, little-endian 16 bits): a read-write mount
// adds one and writes the superblock back at once (ext4_setup_super, ext4_commit_super).
int ext4_mount_count(const std::string& image) {
  std::ifstream f(image, std::ios::binary);
  uint8_t b[2];
  if (!f.seekg(1024 + 0x34) || !f.read(reinterpret_cast<char*>(b), 2)) return -1;
  return b[0] | b[1] << 8;
}

// Runs the backend `server` until `body` returns, then SIGTERMs it; body gets to run only when the
// backend's socket appeared. Returns the backend's own result (its stderr, for failures).
template <typename F>
ProcessResult with_backend(const std::vector<std::string>& server, const std::string& sock, F body) {
  ProcessOptions opts;
  opts.timeout = std::chrono::minutes(45);
  opts.while_running = [&](pid_t pid) {
    if (wait_for_socket(sock)) body();
    else ADD_FAILURE() << server[0] << " did not listen on " << sock;
    ::kill(pid, SIGTERM);
  };
  return run_process(server, opts);
}

class LinuxVhostUserLong : public ::testing::Test {
 protected:
  void SetUp() override {
    REQUIRE_KVM();
    auto k = built_image("guest_kernel.sh", EVMM_GUEST_KERNEL_DIR);
    ASSERT_EQ(k.status, 0) << k.err;
    kernel_ = k.path;
  }

  LinuxBoot boot(const std::string& cmdline, const std::string& until, std::vector<std::string> devices,
                 std::vector<std::string> marks) {
    devices.insert(devices.end(), {"--console", "virtio"});
    LinuxBoot b = boot_linux({.image = kernel_,
                              .cmdline = "console=hvc0 " + cmdline,
                              .cpus = 2,
                              .until = until,
                              .guard = std::chrono::minutes(20),
                              .extra = devices,
                              .marks = marks});
    for (const auto& m : marks)
      if (b.at.count(m)) RecordProperty(m, std::to_string(b.at[m]));
    std::printf("evmm-linux (%s): %s at %.1f s (%.1f s in all)\n", cmdline.c_str(), until.c_str(),
                b.at.count(until) ? b.at[until] : -1.0, b.seconds);
    return b;
  }

  std::string kernel_;
};

// qemu-storage-daemon serves a copy of the ext4 root; Linux's virtio-blk driver reads it through
// evmm's vhost-user frontend, mounts it read-write and writes its superblock back.
TEST_F(LinuxVhostUserLong, Ext4RootOnQemuStorageDaemon) {
  if (::access(kQemuStorageDaemon, X_OK) != 0) GTEST_SKIP() << kQemuStorageDaemon << " is not installed (Debian's qemu-system-common)";
  auto root = built_image("rootfs.sh", EVMM_GUEST_ROOTFS_DIR);
  ASSERT_EQ(root.status, 0) << root.err;
  TempDir dir("evmm-linux-vhost");
  ASSERT_FALSE(dir.path.empty());
  const std::string image = dir.path + "/root.ext4", sock = dir.path + "/blk.sock";
  std::filesystem::copy_file(root.path, image);
  const int mounts_before = ext4_mount_count(image);
  ASSERT_GE(mounts_before, 0);
  const std::string rw_mounted = "VFS: Mounted root (ext4 filesystem) on device";
  LinuxBoot b;
  auto qsd = with_backend(qsd_blk_export(image, sock), sock, [&] {
    b = boot("root=/dev/vda rw rootfstype=ext4", kRunInit, {"--disk", "vhost-user=" + sock}, {"Linux version", rw_mounted, kRunInit});
  });
  ASSERT_TRUE(b.reached) << "after " << b.seconds << " s:\n" << tail(b.serial) << b.r.err << qsd.err;
  EXPECT_TRUE(std::regex_search(b.serial, std::regex("virtio_blk virtio[0-9]+: \\[vda\\]"))) << b.serial;
  EXPECT_TRUE(has(b.serial, rw_mounted)) << b.serial;
  EXPECT_FALSE(has(b.serial, "EXT4-fs error")) << b.serial;
  EXPECT_FALSE(has(b.serial, "I/O error")) << b.serial;
  // The backend's calls reached the guest as interrupts, and the device never needed a reset.
  EXPECT_GE(stats_count(b.r.err, "virtio-vhost-user-blk:interrupts=([0-9]+)"), 1u) << b.r.err;
  EXPECT_EQ(stats_count(b.r.err, "virtio-vhost-user-blk:[^ ]*needs_reset=([0-9]+)"), 0u) << b.r.err;
  // What the guest's mount wrote, read from the host file qemu-storage-daemon wrote it to.
  EXPECT_EQ(ext4_mount_count(image), mounts_before + 1);
}

// virtiofsd exports a directory the test fills just before the boot: its /sbin/init is a text file
// with a fresh token, not a program. Linux mounts the directory as its root through evmm's
// vhost-user-fs frontend, reaches "Run /sbin/init", opens the host's file and reads its first bytes
// to find a binary format, and says it exists but is no executable (-ENOEXEC). A file it could not
// see would have been skipped in silence (-ENOENT): the log line is the host's file seen by the guest.
TEST_F(LinuxVhostUserLong, VirtiofsRootFromQemusVirtiofsd) {
  if (::access(kVirtiofsd, X_OK) != 0) GTEST_SKIP() << kVirtiofsd << " is not installed (Debian's qemu-system-common)";
  TempDir dir("evmm-linux-vhost");
  ASSERT_FALSE(dir.path.empty());
  const std::string share = dir.path + "/share", sock = dir.path + "/fs.sock";
  std::filesystem::create_directories(share + "/sbin");
  std::filesystem::create_directories(share + "/dev");
  const std::string token = std::to_string(std::random_device{}());
  std::ofstream(share + "/sbin/init") << "evmm virtiofs root, written by the host: " << token << "\n";
  ASSERT_EQ(::chmod((share + "/sbin/init").c_str(), 0755), 0);
  const std::string seen = "Starting init: /sbin/init exists but couldn't execute it (error -8)";
  const std::string mounted = "VFS: Mounted root (virtiofs filesystem)";
  LinuxBoot b;
  // sandbox=chroot: the namespace sandbox needs privileges a container may not give.
  auto fsd = with_backend({kVirtiofsd, "--socket-path=" + sock, "-o", "source=" + share, "-o", "cache=none", "-o",
                           "sandbox=chroot"},
                          sock, [&] {
                            b = boot("root=evmmroot rootfstype=virtiofs rw", seen,
                                     {"--fs", "vhost-user=" + sock + ",tag=evmmroot"}, {"Linux version", mounted, kRunInit, seen});
                          });
  ASSERT_TRUE(b.reached) << "after " << b.seconds << " s:\n" << tail(b.serial) << b.r.err << fsd.err;
  EXPECT_TRUE(has(b.serial, mounted)) << b.serial;
  EXPECT_TRUE(has(b.serial, kRunInit)) << b.serial;
  EXPECT_GE(stats_count(b.r.err, "virtio-vhost-user-fs:interrupts=([0-9]+)"), 1u) << b.r.err;
  EXPECT_EQ(stats_count(b.r.err, "virtio-vhost-user-fs:[^ ]*needs_reset=([0-9]+)"), 0u) << b.r.err;
}

}  // namespace
}  // namespace evmm::testing
