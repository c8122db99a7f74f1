// Our guest's virtio drivers against another implementation: QEMU's microvm machine (TCG, no KVM
// needed) describes its virtio-mmio devices in its DSDT as LNRO0005 too. It checks discovery and the
// blk, rng, console and net (send and receive) drivers independently of evmm's devices. Skipped without QEMU.
#include <gtest/gtest.h>
#include <unistd.h>

#include <cstdlib>
#include <fstream>
#include <sstream>

#include "tests/kvm_test_util.h"

namespace evmm::testing {
namespace {


TEST(VirtioGuestQemu, DriversServeOnQemuMicrovm) {
  if (::access(kQemu, X_OK) != 0) GTEST_SKIP() << kQemu << " is not installed (Debian's qemu-system-x86)";
  char dir[] = "/tmp/evmm-qemu-virtio-XXXXXX";
  ASSERT_NE(::mkdtemp(dir), nullptr);
  const std::string disk = std::string(dir) + "/disk.img", cons = std::string(dir) + "/console.txt";
  { std::ofstream(disk, std::ios::binary) << std::string(1 << 20, '\0'); }
  // Modern (version 2) transports, one IOAPIC (GSIs below 24), isa-debug-exit where testprog exits.
  ProcessOptions opts;
  opts.timeout = std::chrono::seconds(60);
  auto r = run_process({kQemu, "-M", "microvm,acpi=on,ioapic2=off,rtc=on", "-m", "128", "-global",
                        "virtio-mmio.force-legacy=false", "-serial", "stdio", "-display", "none", "-no-reboot",
                        "-device", "isa-debug-exit,iobase=0xf4", "-kernel", guest("testprog.pvh.elf"), "-append",
                        "virtio netarp", "-device", "virtio-rng-device", "-drive", "file=" + disk + ",if=none,id=d0,format=raw",
                        "-device", "virtio-blk-device,drive=d0,serial=evmmtest", "-device", "virtio-serial-device",
                        "-chardev", "file,id=c0,path=" + cons, "-device", "virtconsole,chardev=c0", "-netdev",
                        "user,id=n0", "-device", "virtio-net-device,netdev=n0"},
                       opts);
  const std::string written = slurp(cons), image = slurp(disk);
  (void)!std::system((std::string("rm -rf ") + dir).c_str());
  EXPECT_EQ(r.exit_status, 1) << r.out << r.err;
  EXPECT_TRUE(has(r.out, "virtio: 4 devices in the DSDT\n")) << r.out;
  for (const char* dev : {"rng", "blk", "console", "net"})
    EXPECT_TRUE(has(r.out, std::string(dev) + " at 0x")) << dev << "\n" << r.out;
  EXPECT_TRUE(has(r.out, "virtio-rng: 64 bytes, ")) << r.out;
  EXPECT_TRUE(has(r.out, "virtio-blk: 2048 sectors, id \"evmmtest\", 2 sectors written and read back equal, flush ok"))
      << r.out;
  EXPECT_TRUE(has(r.out, "virtio-console: wrote 44 bytes")) << r.out;
  EXPECT_TRUE(has(r.out, "virtio-net: mac 52:54:00:12:34:56, sent a 60-byte frame")) << r.out;
  // The receive path: slirp's gateway answers the guest's ARP request.
  EXPECT_TRUE(has(r.out, "netarp: 10.0.2.2 is at 52:55:0a:00:02:02 (")) << r.out;
  EXPECT_EQ(written, "hello from the guest through virtio-console\n");
  // testprog's pattern (i * 7 + 3) reached sectors 2 and 3 of the file.
  ASSERT_EQ(image.size(), 1u << 20);
  for (size_t i = 0; i < 1024; ++i) ASSERT_EQ(uint8_t(image[1024 + i]), uint8_t(i * 7 + 3)) << i;
}

}  // namespace
}  // namespace evmm::testing
