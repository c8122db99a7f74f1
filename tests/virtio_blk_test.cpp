// virtio-blk in a real VM: `--disk` builds the device, places its window, and evmm still stops
// cleanly with the seccomp filters on (the default). The guest-side driver is another issue's; here
// the guest only boots and powers off.
#include <gtest/gtest.h>

#include <sys/stat.h>

#include <fstream>

#include "tests/kvm_test_util.h"

namespace evmm::testing {
namespace {

std::string make_image(const std::string& name, size_t bytes) {
  std::string path = ::testing::TempDir() + "/" + name;
  std::ofstream(path, std::ios::binary) << std::string(bytes, '\0');
  return path;
}

TEST(VirtioBlkVm, DiskIsBuiltAndEvmmStopsCleanly) {
  REQUIRE_KVM();
  const std::string rw = make_image("evmm-blk-rw.img", 1 << 20), ro = make_image("evmm-blk-ro.img", 1 << 20);
  auto r = boot("testprog.pvh.elf", "hello poweroff", 1,
                {"--disk", "path=" + rw, "--disk", "path=" + ro + ",readonly", "--stats"});
  EXPECT_EQ(r.exit_status, 0) << r.err;
  // Both disks were on the bus and the event loop until the end (their counters are printed).
  EXPECT_TRUE(std::regex_search(r.err, std::regex("virtio-blk:[^ ]*,requests=0,refused=0,host_errors=0"))) << r.err;
  size_t first = r.err.find(" virtio-blk:");
  ASSERT_NE(first, std::string::npos) << r.err;
  EXPECT_NE(r.err.find(" virtio-blk:", first + 1), std::string::npos) << r.err;
  EXPECT_FALSE(has(r.err, "seccomp")) << r.err;
}

TEST(VirtioBlkVm, BadDisksAreOneLineErrors) {
  REQUIRE_KVM();
  const std::string locked = make_image("evmm-blk-locked.img", 4096);
  ASSERT_EQ(::chmod(locked.c_str(), 0444), 0);
  for (const std::string& spec : {std::string("path=/nonexistent/evmm.img"), "path=" + locked}) {
    auto r = boot("testprog.pvh.elf", "hello poweroff", 1, {"--disk", spec});
    EXPECT_NE(r.exit_status, 0) << spec;
    EXPECT_EQ(count_lines(r.err), 1u) << r.err;
    EXPECT_TRUE(has(r.err, "--disk path=")) << r.err;
  }
  // The same file read-only is fine.
  auto r = boot("testprog.pvh.elf", "hello poweroff", 1, {"--disk", "path=" + locked + ",readonly"});
  EXPECT_EQ(r.exit_status, 0) << r.err;
}

}  // namespace
}  // namespace evmm::testing
