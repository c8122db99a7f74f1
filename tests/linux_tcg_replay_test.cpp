// The Linux loader checked by a second CPU: evmm's loader fills a GuestMemory with Debian's cloud
// bzImage (either decompression) and an initrd, and QEMU's TCG, with no firmware but a 64 KiB reset
// ROM (linux_tcg_rom.S) that enters 64-bit mode on evmm's page tables and GDT, runs those bytes to
// the Linux banner and its initrd reservation. It shows boot_params, the e820 map, the command line,
// the initrd and the entry state are what Linux wants, on hosts without /dev/kvm too (the KVM boots:
// linux_bzimage_test.cpp). QEMU's own firmware area hides evmm's ACPI tables at 0xE0000, which this
// early boot does not need. Suite name ends in Long (the download); skips without the image or QEMU.
#include <gtest/gtest.h>

#include <signal.h>

#include <chrono>
#include <fstream>
#include <iterator>
#include <thread>

#include <asm/bootparam.h>

#include "boot/boot.h"
#include "boot/cpu_entry.h"
#include "memory/guest_memory.h"
#include "memory/layout.h"
#include "testing/serial_file.h"
#include "tests/kvm_test_util.h"

namespace evmm::testing {
namespace {

constexpr uint64_t kRam = 512 * layout::MiB;
// What QEMU is given of guest RAM: low RAM past page 0 (boot data), and from 16 MiB the kernel.
constexpr uint64_t kLowStart = 0x1000, kLowEnd = layout::kEbdaStart;
constexpr uint64_t kHighStart = 16 * layout::MiB, kHighEnd = 80 * layout::MiB;

// run_process execs without a PATH search: the program's full path, or empty.
std::string which(const std::string& name) {
  auto r = run_process({"/bin/sh", "-c", "command -v " + name});
  std::string path = r.exit_status == 0 ? r.out : "";
  path.erase(path.find_last_not_of('\n') + 1);
  return path;
}

std::string dump(const GuestMemory& mem, const std::string& name, uint64_t start, uint64_t end) {
  std::vector<uint8_t> bytes(end - start);
  EXPECT_TRUE(mem.read(GuestAddress(start), bytes));
  std::string path = ::testing::TempDir() + "/" + name;
  std::ofstream(path, std::ios::binary).write(reinterpret_cast<const char*>(bytes.data()), std::streamsize(bytes.size()));
  return path;
}

class CloudBzImageTcgLong : public ::testing::TestWithParam<Decompress> {};

TEST_P(CloudBzImageTcgLong, QemuRunsEvmmsLoadedImageToTheBanner) {
  std::string qemu = which("qemu-system-x86_64"), as_bin = which("as"), ld_bin = which("ld");
  if (qemu.empty()) GTEST_SKIP() << "qemu-system-x86_64 is not installed (scripts/deps.sh bench)";
  ASSERT_FALSE(as_bin.empty() || ld_bin.empty()) << "binutils' as and ld are build dependencies";
  ProcessOptions fetch;
  fetch.timeout = std::chrono::minutes(10);
  auto k = run_process({std::string(EVMM_SOURCE_DIR) + "/scripts/cloud_kernel.sh", EVMM_CLOUD_KERNEL_DIR, "bzimage"}, fetch);
  if (k.exit_status == 77) GTEST_SKIP() << "Debian's cloud kernel cannot be had: " << k.err;
  ASSERT_EQ(k.exit_status, 0) << k.err;
  k.out.erase(k.out.find_last_not_of('\n') + 1);
  std::ifstream f(k.out, std::ios::binary);
  std::vector<uint8_t> image{std::istreambuf_iterator<char>(f), {}};

  auto mem = GuestMemory::create_pc(kRam);
  ASSERT_TRUE(mem);
  BootConfig cfg;
  cfg.image = image;
  cfg.cmdline = "console=ttyS0 earlyprintk=serial,ttyS0,115200";
  cfg.decompress = GetParam();
  std::vector<uint8_t> initrd(64 * 1024, 0x5a);  // not a cpio archive: Linux reserves it, then says so
  cfg.modules.push_back({initrd, "initrd"});
  auto entry = load_image(*mem, cfg);
  ASSERT_TRUE(entry) << entry.error().message();
  ASSERT_TRUE(write_boot_tables(*mem, *entry));
  ASSERT_LT(entry->page_tables, kLowEnd);
  ASSERT_LT(entry->rsi, kLowEnd);
  std::string low = dump(*mem, "tcg-low.bin", kLowStart, kLowEnd);
  std::string high = dump(*mem, "tcg-high.bin", kHighStart, kHighEnd);
  auto bp = mem->read_obj<boot_params>(GuestAddress(entry->rsi));
  ASSERT_TRUE(bp);
  const uint64_t rd = bp->hdr.ramdisk_image;
  ASSERT_GE(rd, kHighEnd);
  std::string rd_file = dump(*mem, "tcg-initrd.bin", rd, rd + initrd.size());
  // setup_arch's reserve_initrd prints where the initrd is, as boot_params told it.
  const std::string ramdisk = fmt::format("RAMDISK: [mem {:#010x}-{:#010x}]", rd, rd + initrd.size() - 1);

  std::string dir = ::testing::TempDir(), obj = dir + "/tcg-rom.o", rom = dir + "/tcg-rom.bin";
  auto as = run_process({as_bin, "--defsym", fmt::format("ENTRY={:#x}", entry->rip), "--defsym",
                         fmt::format("BOOT_PARAMS={:#x}", entry->rsi), "--defsym",
                         fmt::format("PML4={:#x}", entry->page_tables), "--defsym", fmt::format("GDT_BASE={:#x}", entry->gdt),
                         "-o", obj, std::string(EVMM_SOURCE_DIR) + "/tests/linux_tcg_rom.S"});
  ASSERT_EQ(as.exit_status, 0) << as.err;
  auto ld = run_process({ld_bin, "-m", "elf_x86_64", "-e", "0", "-Ttext=0", "--oformat=binary", "-o", rom, obj});
  ASSERT_EQ(ld.exit_status, 0) << ld.err;

  SerialFile serial;
  ASSERT_EQ(serial.create("evmm-tcg"), "");
  bool reached = false;
  ProcessOptions opts;
  opts.timeout = std::chrono::minutes(5);
  opts.while_running = [&](pid_t pid) {
    for (int i = 0; i < 3000 && !reached; ++i) {
      reached = has(serial.contents(), ramdisk);
      if (!reached) std::this_thread::sleep_for(std::chrono::milliseconds(100));
    }
    ::kill(pid, SIGTERM);
  };
  auto start = std::chrono::steady_clock::now();
  auto r = run_process({qemu, "-machine", "pc", "-accel", "tcg", "-cpu", "max", "-m",
                        std::to_string(kRam / layout::MiB), "-bios", rom, "-device",
                        fmt::format("loader,file={},addr={:#x},force-raw=on", low, kLowStart), "-device",
                        fmt::format("loader,file={},addr={:#x},force-raw=on", high, kHighStart), "-device",
                        fmt::format("loader,file={},addr={:#x},force-raw=on", rd_file, rd), "-display", "none",
                        "-monitor", "none", "-serial", "file:" + serial.path(), "-no-reboot"},
                       opts);
  double seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
  std::printf("QEMU TCG, %s decompression: banner after %.1f s\n", GetParam() == Decompress::Host ? "host" : "guest",
              seconds);
  std::string out = serial.contents();
  EXPECT_TRUE(reached) << out << r.err;
  EXPECT_TRUE(has(out, "Linux version 6.")) << out;
  EXPECT_TRUE(has(out, "Command line: " + cfg.cmdline)) << out;
  // The map Linux prints is evmm's e820 from boot_params, not QEMU's.
  EXPECT_TRUE(has(out, "BIOS-e820: [mem 0x00000000000e0000-0x00000000000fffff] reserved")) << out;
}

INSTANTIATE_TEST_SUITE_P(Decompression, CloudBzImageTcgLong, ::testing::Values(Decompress::Host, Decompress::Guest),
                         [](const auto& info) { return info.param == Decompress::Host ? "Host" : "Guest"; });

}  // namespace
}  // namespace evmm::testing
