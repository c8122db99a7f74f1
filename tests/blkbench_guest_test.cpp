// The blkbench guest (the workload of bench/blk_bench.cpp) on evmm's virtio-blk and on QEMU's microvm
// (TCG, no KVM needed): it prints every phase line the bench parses and ends with rt_exit(0), and its
// writes reach the image: the last 1 MiB it read is what it wrote over the first MiBs.
#include <gtest/gtest.h>
#include <unistd.h>

#include <cstdlib>
#include <fstream>
#include <regex>
#include <sstream>

#include "tests/kvm_test_util.h"

namespace evmm::testing {
namespace {

constexpr const char* kWords = "reads=20 mib=2";

class BlkBenchGuest : public ::testing::Test {
 protected:
  void SetUp() override {
    ASSERT_NE(::mkdtemp(dir_.data()), nullptr);
    disk_ = dir_ + "/disk.img";
    std::string data(4 << 20, '\0');
    for (size_t i = 0; i < data.size(); i++) data[i] = char((i >> 20) * 37 + i * 13);
    std::ofstream(disk_, std::ios::binary) << data;
    original_ = data;
  }
  void TearDown() override { (void)!std::system(("rm -rf " + dir_).c_str()); }

  void expect_ran(const ProcessResult& r) {
    EXPECT_EQ(r.exit_status, 1) << r.out << r.err;  // rt_exit(0) through debug-exit
    for (const char* phase : {"spin", "null", "rand4k", "seqread", "seqwrite"})
      EXPECT_TRUE(std::regex_search(r.out, std::regex(std::string("blkbench: ") + phase + " ops=[0-9]+ bytes=[0-9]+ cycles=[1-9]")))
          << phase << "\n" << r.out;
    EXPECT_TRUE(has(r.out, "blkbench: rand4k ops=20 bytes=81920 ")) << r.out;
    std::ifstream f(disk_, std::ios::binary);
    std::stringstream s;
    s << f.rdbuf();
    const std::string image = s.str(), last_read = original_.substr(1 << 20, 1 << 20);
    ASSERT_EQ(image.size(), original_.size());
    EXPECT_TRUE(image.compare(0, 1 << 20, last_read) == 0 && image.compare(1 << 20, 1 << 20, last_read) == 0)
        << "the 1 MiB writes did not reach the image";
    EXPECT_TRUE(image.compare(2 << 20, 2 << 20, original_, 2 << 20, 2 << 20) == 0) << "a write went past mib=2";
  }

  std::string dir_ = "/tmp/evmm-blkbench-XXXXXX", disk_, original_;
};

TEST_F(BlkBenchGuest, RunsOnEvmm) {
  REQUIRE_KVM();
  expect_ran(boot("blkbench.pvh.elf", kWords, 1, {"--memory", "64", "--disk", "path=" + disk_}));
}

TEST_F(BlkBenchGuest, RunsOnQemuMicrovm) {
  if (::access(kQemu, X_OK) != 0) GTEST_SKIP() << kQemu << " is not installed (Debian's qemu-system-x86)";
  ProcessOptions opts;
  opts.timeout = std::chrono::seconds(60);
  expect_ran(run_process({kQemu, "-M", "microvm,acpi=on,ioapic2=off,rtc=on", "-accel", "tcg", "-m", "64", "-global",
                          "virtio-mmio.force-legacy=false", "-serial", "stdio", "-display", "none", "-monitor", "none",
                          "-no-reboot", "-device", "isa-debug-exit,iobase=0xf4", "-kernel", guest("blkbench.pvh.elf"),
                          "-append", kWords, "-drive", "file=" + disk_ + ",if=none,id=d0,format=raw", "-device",
                          "virtio-blk-device,drive=d0"},
                         opts));
}

}  // namespace
}  // namespace evmm::testing
