// evmm's devices served out of process (`evmm device rng|blk --socket`) to a real vhost-user
// frontend: QEMU's microvm machine (TCG, no KVM needed) with vhost-user-rng and vhost-user-blk on
// virtio-mmio, its guest memory a shared memfd. Our test guest's drivers draw random bytes and write,
// read back and flush disk sectors through QEMU and the evmm backends; the test then reads the
// sectors from the image file on the host. Skipped without QEMU.
#include <gtest/gtest.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cstdlib>
#include <fstream>
#include <sstream>
#include <thread>

#include "tests/kvm_test_util.h"

namespace evmm::testing {
namespace {


TEST(VhostUserQemu, EvmmDeviceBackendsServeQemusGuest) {
  if (::access(kQemu, X_OK) != 0) GTEST_SKIP() << kQemu << " is not installed (Debian's qemu-system-x86)";
  char dir[] = "/tmp/evmm-vhost-user-XXXXXX";
  ASSERT_NE(::mkdtemp(dir), nullptr);
  const std::string d(dir), disk = d + "/disk.img", rng_sock = d + "/rng.sock", blk_sock = d + "/blk.sock";
  { std::ofstream(disk, std::ios::binary) << std::string(1 << 20, '\0'); }

  ProcessOptions backend_opts;
  backend_opts.timeout = std::chrono::seconds(90);
  ProcessResult rng, blk;
  std::thread rng_thread([&] { rng = run_process({EVMM_BINARY, "device", "rng", "--socket", rng_sock, "--stats"}, backend_opts); });
  std::thread blk_thread([&] {
    blk = run_process({EVMM_BINARY, "device", "blk", "--socket", blk_sock, "--disk", "path=" + disk, "--stats"}, backend_opts);
  });
  const bool listening = wait_for_socket(rng_sock) && wait_for_socket(blk_sock);

  ProcessResult r;
  if (listening) {
    ProcessOptions opts;
    opts.timeout = std::chrono::seconds(60);
    r = run_process(qemu_microvm(guest("testprog.pvh.elf"), "virtio",
                                 {"-chardev", "socket,id=vr,path=" + rng_sock, "-device", "vhost-user-rng,chardev=vr",
                                  "-chardev", "socket,id=vb,path=" + blk_sock, "-device",
                                  "vhost-user-blk,chardev=vb,num-queues=1"}),
                    opts);
  }
  rng_thread.join();
  blk_thread.join();
  const std::string image = slurp(disk);
  (void)!std::system(("rm -rf " + d).c_str());
  ASSERT_TRUE(listening) << "evmm device did not listen\n" << rng.err << blk.err;

  EXPECT_EQ(r.exit_status, 1) << r.out << r.err;
  EXPECT_TRUE(has(r.out, "virtio-rng: 64 bytes, ")) << r.out;
  EXPECT_TRUE(has(r.out, "virtio-blk: 2048 sectors")) << r.out;
  EXPECT_TRUE(has(r.out, "2 sectors written and read back equal, flush ok")) << r.out;
  // Each backend saw its frontend go away cleanly and served what the guest asked.
  EXPECT_EQ(rng.exit_status, 0) << rng.err;
  EXPECT_EQ(blk.exit_status, 0) << blk.err;
  EXPECT_TRUE(has(rng.err, "refused 0,")) << rng.err;
  EXPECT_TRUE(has(blk.err, "refused 0,")) << blk.err;
  EXPECT_TRUE(has(rng.err, "rng requests ")) << rng.err;
  EXPECT_TRUE(has(blk.err, "blk requests ")) << blk.err;
  // testprog's pattern (i * 7 + 3) reached sectors 2 and 3 of the file, through QEMU and evmm.
  ASSERT_EQ(image.size(), 1u << 20);
  for (size_t i = 0; i < 1024; ++i) ASSERT_EQ(uint8_t(image[1024 + i]), uint8_t(i * 7 + 3)) << i;
}

}  // namespace
}  // namespace evmm::testing
