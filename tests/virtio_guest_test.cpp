// Our own guest's virtio drivers against evmm's devices: discovery from the DSDT, the rng driver
// with its interrupt, and a malformed-queue guest that puts one bad chain of each kind on virtio-rng's
// queue (virtio 1.2 §2.7) and checks evmm refused and counted exactly that kind and kept serving.
#include <gtest/gtest.h>
#include <unistd.h>

#include <cstdlib>
#include <regex>

#include "tests/kvm_test_util.h"

namespace evmm::testing {
namespace {

// The --stats counters of one virtio device ("rng"), 0 when absent.
unsigned virtio_stat(const std::string& err, const std::string& dev, const std::string& name) {
  return stats_count(err, "virtio-" + dev + ":[^ \n]*" + name + "=([0-9]+)");
}

// Both ways evmm describes the devices: on the command line as well (the DSDT's _STA then says 0,
// which the runtime ignores, and testprog must skip the virtio_mmio.device= word), or in the DSDT only.
TEST(VirtioGuest, FindsRngInTheDsdtAndReadsItByInterrupt) {
  REQUIRE_KVM();
  for (bool cmdline : {true, false}) {
    std::vector<std::string> extra{"--rng", "--stats"};
    if (!cmdline) extra.push_back("--no-virtio-cmdline");
    auto r = boot("testprog.mb.elf", "virtio", 1, extra);
    SCOPED_TRACE(cmdline ? "with command-line entries" : "DSDT only");
    EXPECT_EQ(r.exit_status, 1) << r.out << r.err;
    EXPECT_TRUE(has(r.out, "virtio: 1 devices in the DSDT\n")) << r.out;
    EXPECT_TRUE(has(r.out, "virtio 0: rng at 0xd0001000 gsi 5 version 2\n")) << r.out;
    std::smatch m;
    ASSERT_TRUE(std::regex_search(r.out, m, std::regex("virtio-rng: ([0-9]+) bytes, ([0-9]+) distinct, ([1-9][0-9]*) interrupts"))) << r.out;
    EXPECT_EQ(m[1], "64");
    EXPECT_GT(std::stoul(m[2]), 8u) << "64 random bytes with 8 or fewer distinct values";
    EXPECT_GE(virtio_stat(r.err, "rng", "interrupts"), 1u) << r.err;
    EXPECT_EQ(virtio_stat(r.err, "rng", "queue_faults"), 0u) << r.err;
  }
}

TEST(VirtioGuest, NoDevicesNoneFound) {
  REQUIRE_KVM();
  auto r = boot("testprog.mb.elf", "virtio", 1);
  EXPECT_EQ(r.exit_status, 1) << r.out << r.err;
  EXPECT_TRUE(has(r.out, "virtio: 0 devices in the DSDT\n")) << r.out;
}

struct BadKind {
  const char* word;   // testprog's vqbad=<word>
  const char* fault;  // the QueueFault's name in --stats (devices/virtio/queue.cpp to_string)
};

class VirtioMalformedQueue : public ::testing::TestWithParam<BadKind> {};

// The other device each run must still serve: a disk when evmm has virtio-blk, else its console. A
// device evmm does not make yet is absent from --stats, and the guest must then say it found none.
void expect_other_device_served(const ProcessResult& r) {
  if (has(r.err, "virtio-blk:")) EXPECT_TRUE(has(r.out, "vqbad: virtio-blk served too\n")) << r.out;
  else if (has(r.err, "virtio-console:")) EXPECT_TRUE(has(r.out, "vqbad: virtio-console served too\n")) << r.out;
  else EXPECT_TRUE(has(r.out, "vqbad: no other virtio device to serve\n")) << r.out;
  for (const char* dev : {"blk", "console"}) EXPECT_EQ(virtio_stat(r.err, dev, "queue_faults"), 0u) << dev << r.err;
}

TEST_P(VirtioMalformedQueue, RefusedCountedAndStillServing) {
  REQUIRE_KVM();
  const BadKind& k = GetParam();
  char disk[] = "/tmp/evmm-vqbad-disk-XXXXXX";
  int fd = ::mkstemp(disk);
  ASSERT_GE(fd, 0);
  ASSERT_EQ(::ftruncate(fd, 64 << 10), 0);
  ::close(fd);
  auto r = boot("testprog.mb.elf", std::string("vqbad=") + k.word, 1,
                {"--rng", "--disk", std::string("path=") + disk, "--console", "virtio", "--stats"});
  ::unlink(disk);
  EXPECT_EQ(r.exit_status, 1) << r.out << r.err;
  expect_other_device_served(r);
  const bool jump = std::string(k.word) == "jump";
  if (jump) {
    EXPECT_TRUE(has(r.out, "vqbad: jump: status 0x4f has DEVICE_NEEDS_RESET (config interrupt taken)")) << r.out;
    EXPECT_TRUE(has(r.out, "vqbad: jump: reset, then the same queue served 32 bytes")) << r.out;
  } else {
    EXPECT_TRUE(has(r.out, fmt::format("vqbad: {}: the same queue served 32 bytes after it", k.word))) << r.out;
  }
  // Exactly this kind, once, and nothing else refused.
  EXPECT_EQ(virtio_stat(r.err, "rng", fmt::format("fault\\[{}\\]", k.fault)), 1u) << r.err;
  EXPECT_EQ(virtio_stat(r.err, "rng", "queue_faults"), 1u) << r.err;
  EXPECT_EQ(virtio_stat(r.err, "rng", "needs_reset"), jump ? 1u : 0u) << r.err;
}

INSTANTIATE_TEST_SUITE_P(Kinds, VirtioMalformedQueue,
                         ::testing::Values(BadKind{"head", "head index out of range"},
                                           BadKind{"next", "next index out of range"},
                                           BadKind{"loop", "descriptor loop"},
                                           BadKind{"long", "chain too long"},
                                           BadKind{"large", "chain larger than 4 GiB"},
                                           BadKind{"outside", "buffer outside guest RAM"},
                                           BadKind{"direction", "readable buffer after a writable one"},
                                           BadKind{"indirect-off", "indirect descriptor not negotiated"},
                                           BadKind{"nested", "nested indirect descriptor"},
                                           BadKind{"indirect-next", "indirect descriptor with NEXT"},
                                           BadKind{"indirect-len", "indirect table length"},
                                           BadKind{"jump", "available index jumped"}),
                         [](const auto& info) {
                           std::string n = info.param.word;
                           std::erase(n, '-');
                           return n;
                         });

}  // namespace
}  // namespace evmm::testing
