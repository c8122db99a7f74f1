// Debian's stock cloud kernel as a bzImage (issue 14, "Loading"): the Linux 64-bit boot protocol
// loader checked field by field against a real image, its host-side decompression against the
// vmlinux scripts/cloud_kernel.sh unpacks with shell tools, and boots to the banner on /dev/kvm
// with either decompression. They need the download, so their suite ends in Long (label long) and
// each skips with the reason when the package cannot be had (exit 77, as CloudKernelLong does).
#include <gtest/gtest.h>
#include <signal.h>

#include <chrono>
#include <cstring>
#include <fstream>
#include <iterator>
#include <thread>

#include "boot/boot.h"
#include "boot/decompress.h"
#include "boot/linux_header.h"
#include "boot/linux_params.h"
#include "memory/guest_memory.h"
#include "memory/layout.h"
#include "testing/serial_file.h"
#include "tests/kvm_test_util.h"

namespace evmm::testing {
namespace {

constexpr int kSkipStatus = 77;

struct Image {
  int status = -1;
  std::string path, err;
};

// scripts/cloud_kernel.sh OUT_DIR MODE prints the cached or fetched image's path.
Image cloud_kernel(const std::string& mode) {
  ProcessOptions opts;
  opts.timeout = std::chrono::minutes(10);
  auto r = run_process({std::string(EVMM_SOURCE_DIR) + "/scripts/cloud_kernel.sh", EVMM_CLOUD_KERNEL_DIR, mode}, opts);
  Image k{r.exit_status, r.out, r.err};
  while (!k.path.empty() && k.path.back() == '\n') k.path.pop_back();
  return k;
}

std::vector<uint8_t> read_all(const std::string& path) {
  std::ifstream f(path, std::ios::binary);
  return {std::istreambuf_iterator<char>(f), std::istreambuf_iterator<char>()};
}

#define CLOUD_IMAGE(var, mode)                                                                  \
  auto var = cloud_kernel(mode);                                                                \
  if (var.status == kSkipStatus) GTEST_SKIP() << "Debian's cloud kernel cannot be had: " << var.err; \
  ASSERT_EQ(var.status, 0) << var.err

TEST(CloudBzImageLong, HostDecompressionGivesTheScriptsVmlinux) {
  CLOUD_IMAGE(bz_file, "bzimage");
  CLOUD_IMAGE(elf_file, "vmlinux");
  auto image = read_all(bz_file.path);
  auto bz = boot::parse_bzimage(image);
  ASSERT_TRUE(bz) << bz.error().message();
  auto kind = boot::detect_compression(bz->payload);
  ASSERT_TRUE(kind);
  auto out = boot::decompress(bz->payload, 512 * layout::MiB);
  ASSERT_TRUE(out) << out.error().message();
  auto want = read_all(elf_file.path);
  EXPECT_EQ(out->size(), want.size()) << boot::to_string(*kind);
  EXPECT_TRUE(*out == want) << "the " << boot::to_string(*kind) << " payload decompressed differently";
  std::printf("cloud bzImage: protocol %x, %s payload of %zu bytes, vmlinux %zu bytes\n", bz->version(),
              boot::to_string(*kind), bz->payload.size(), out->size());
}

// Every field of boot_params after loading the real image with a command line and an initrd: the
// setup header as the image has it except the fields a loader writes, which hold what evmm chose.
TEST(CloudBzImageLong, BootParamsFieldByField) {
  CLOUD_IMAGE(bz_file, "bzimage");
  auto image = read_all(bz_file.path);
  auto mem = GuestMemory::create_pc(512 * layout::MiB);
  ASSERT_TRUE(mem);
  std::vector<uint8_t> initrd(100000, 0x5a);
  for (Decompress d : {Decompress::Host, Decompress::Guest}) {
    BootConfig cfg;
    cfg.image = image;
    cfg.cmdline = "console=ttyS0 vga=0x317";
    cfg.modules.push_back({initrd, "initrd"});
    cfg.decompress = d;
    auto entry = load_image(*mem, cfg);
    ASSERT_TRUE(entry) << entry.error().message();
    EXPECT_EQ(entry->format, ImageFormat::Linux);
    EXPECT_EQ(entry->mode, EntryMode::Long64);
    auto bp = mem->read_obj<boot_params>(GuestAddress(entry->rsi));
    ASSERT_TRUE(bp);
    boot_params img{};
    size_t end = 0x202 + image[0x201];
    std::memcpy(reinterpret_cast<uint8_t*>(&img) + 0x1f1, image.data() + 0x1f1, end - 0x1f1);
    const setup_header &h = bp->hdr, &w = img.hdr;
    // Read-only fields, and those evmm leaves as the image has them.
    EXPECT_EQ(h.setup_sects, w.setup_sects);
    EXPECT_EQ(h.root_flags, w.root_flags);
    EXPECT_EQ(h.syssize, w.syssize);
    EXPECT_EQ(h.root_dev, w.root_dev);
    EXPECT_EQ(h.boot_flag, 0xAA55);
    EXPECT_EQ(h.jump, w.jump);
    EXPECT_EQ(h.header, boot::kHdrSMagic);
    EXPECT_EQ(h.version, w.version);
    EXPECT_GE(h.version, 0x020e);
    EXPECT_EQ(h.kernel_version, w.kernel_version);
    EXPECT_EQ(h.setup_move_size, w.setup_move_size);
    EXPECT_EQ(h.initrd_addr_max, w.initrd_addr_max);
    EXPECT_EQ(h.kernel_alignment, w.kernel_alignment);
    EXPECT_EQ(h.relocatable_kernel, w.relocatable_kernel);
    EXPECT_EQ(h.min_alignment, w.min_alignment);
    EXPECT_EQ(h.xloadflags, w.xloadflags);
    EXPECT_TRUE(h.xloadflags & XLF_KERNEL_64);
    EXPECT_EQ(h.cmdline_size, w.cmdline_size);
    EXPECT_EQ(h.payload_offset, w.payload_offset);
    EXPECT_EQ(h.payload_length, w.payload_length);
    EXPECT_EQ(h.setup_data, 0u);
    EXPECT_EQ(h.pref_address, w.pref_address);
    EXPECT_EQ(h.init_size, w.init_size);
    EXPECT_EQ(h.handover_offset, w.handover_offset);
    EXPECT_EQ(h.kernel_info_offset, w.kernel_info_offset);
    // What the loader writes.
    EXPECT_EQ(h.vid_mode, 0x317);
    EXPECT_EQ(h.type_of_loader, 0xff);
    EXPECT_EQ(h.loadflags, LOADED_HIGH | CAN_USE_HEAP);
    EXPECT_EQ(h.heap_end_ptr, boot::kHeapEndPtr);
    EXPECT_EQ(h.ext_loader_ver, 0);
    EXPECT_EQ(h.ext_loader_type, 0);
    EXPECT_EQ(h.hardware_subarch, 0u);
    EXPECT_EQ(h.hardware_subarch_data, 0u);
    EXPECT_EQ(h.code32_start, d == Decompress::Guest ? uint32_t(w.pref_address) : w.code32_start);
    auto cmdline = mem->read_obj<std::array<char, 24>>(GuestAddress(h.cmd_line_ptr));
    ASSERT_TRUE(cmdline);
    EXPECT_STREQ(cmdline->data(), "console=ttyS0 vga=0x317");
    EXPECT_EQ(bp->ext_cmd_line_ptr, 0u);
    EXPECT_EQ(h.ramdisk_size, initrd.size());
    EXPECT_EQ(h.ramdisk_image % 4096, 0u);
    EXPECT_GE(h.ramdisk_image, w.pref_address + w.init_size);  // above the kernel's footprint
    EXPECT_LE(uint64_t(h.ramdisk_image) + initrd.size() - 1, w.initrd_addr_max);
    EXPECT_EQ(bp->ext_ramdisk_image, 0u);
    EXPECT_EQ(bp->ext_ramdisk_size, 0u);
    EXPECT_EQ(bp->acpi_rsdp_addr, kRsdpAddress);
    auto e820 = build_e820(*mem);
    ASSERT_EQ(bp->e820_entries, e820.size());
    for (size_t i = 0; i < e820.size(); ++i)
      EXPECT_TRUE(bp->e820_table[i].addr == e820[i].addr && bp->e820_table[i].size == e820[i].size &&
                  bp->e820_table[i].type == e820[i].type) << i;
    EXPECT_EQ(bp->sentinel, 0);
    // The entry: startup_64 of the vmlinux (host), or the compressed kernel's 64-bit entry (guest).
    EXPECT_EQ(entry->rip, d == Decompress::Host ? w.pref_address : w.pref_address + 0x200);
  }
}

struct Banner {
  ProcessResult r;
  std::string serial;
  bool reached = false;
  double seconds = 0;
};

bool exited(pid_t pid) {
  std::ifstream stat("/proc/" + std::to_string(pid) + "/stat");
  std::string line;
  if (!std::getline(stat, line)) return true;
  auto close = line.rfind(')');
  return close == std::string::npos || close + 2 >= line.size() || line[close + 2] == 'Z';
}

// The line after the banner: printed in the same burst once the serial console registers, and it
// shows the command line arrived through boot_params.
constexpr const char* kMarker = "Command line: console=ttyS0";

// Boots the bzImage until the serial output shows kMarker (then SIGTERM), or the guard.
Banner boot_to_banner(const std::string& image, const std::string& decompress, std::chrono::minutes guard) {
  SerialFile serial;
  EXPECT_EQ(serial.create("evmm-bzimage"), "");
  Banner b;
  ProcessOptions opts;
  opts.timeout = guard;
  opts.timeout_signal = SIGUSR2;  // evmm's register dump says where it was
  opts.while_running = [&](pid_t pid) {
    while (!exited(pid)) {
      if (has(serial.contents(), kMarker)) {
        b.reached = true;
        ::kill(pid, SIGTERM);
        return;
      }
      std::this_thread::sleep_for(std::chrono::milliseconds(100));
    }
  };
  auto start = std::chrono::steady_clock::now();
  b.r = evmm({"run", "--kernel", image, "--decompress", decompress, "--cmdline", "console=ttyS0", "--memory", "512",
              "--serial", "file:" + serial.path()},
             opts);
  b.seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
  b.serial = serial.contents();
  b.reached = b.reached || has(b.serial, kMarker);
  return b;
}

TEST(CloudBzImageLong, HostDecompressedBootsToTheBanner) {
  REQUIRE_KVM();
  CLOUD_IMAGE(bz_file, "bzimage");
  auto b = boot_to_banner(bz_file.path, "host", std::chrono::minutes(5));
  RecordProperty("banner_seconds", std::to_string(b.seconds));
  std::printf("bzImage, host decompression: banner after %.1f s\n", b.seconds);
  EXPECT_TRUE(b.reached) << b.serial << b.r.err;
  EXPECT_TRUE(has(b.serial, "Linux version")) << b.serial;
}

// The kernel's own decompressor at its 64-bit entry: at CPL0, which this kind of host emulates
// instruction by instruction, so it takes far longer than the host path (README, "Linux").
TEST(CloudBzImageLong, GuestDecompressedBootsToTheBanner) {
  REQUIRE_KVM();
  CLOUD_IMAGE(bz_file, "bzimage");
  auto b = boot_to_banner(bz_file.path, "guest", std::chrono::minutes(40));
  RecordProperty("banner_seconds", std::to_string(b.seconds));
  std::printf("bzImage, guest decompression: banner after %.1f s\n", b.seconds);
  EXPECT_TRUE(b.reached) << b.serial << b.r.err;
  EXPECT_TRUE(has(b.serial, "Linux version")) << b.serial;
}

}  // namespace
}  // namespace evmm::testing
