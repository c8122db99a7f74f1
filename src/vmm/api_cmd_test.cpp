// What a Firecracker configuration becomes: the command line Firecracker would give the kernel, the
// drives with the root first, tap interfaces, entropy, and refusals for what evmm lacks.
#include "vmm/api_cmd.h"

#include <gtest/gtest.h>

namespace evmm {
namespace {

api::FcConfig base() {
  api::FcConfig c;
  c.boot = api::FcBootSource{"/k/vmlinux", "/k/initrd", std::nullopt};
  c.machine.vcpu_count = 2;
  c.machine.mem_size_mib = 256;
  return c;
}

TEST(ApiVmConfig, FirecrackersDefaultCommandLineAndTheRootDrive) {
  api::FcConfig c = base();
  c.drives.push_back({.drive_id = "root", .path_on_host = "/r.ext4", .is_root_device = true, .is_read_only = true,
                      .partuuid = "", .cache_type = "Unsafe", .io_engine = "Sync", .socket = ""});
  c.drives.push_back({.drive_id = "blk", .path_on_host = "", .is_root_device = false, .is_read_only = false,
                      .partuuid = "", .cache_type = "Unsafe", .io_engine = "Sync", .socket = "/run/blk.sock"});
  c.nets.push_back({.iface_id = "1", .host_dev_name = "tap7", .guest_mac = std::array<uint8_t, 6>{2, 0, 0, 0, 0, 9}});
  c.entropy = true;
  auto v = to_vm_config(c);
  ASSERT_TRUE(v) << v.error().message();
  EXPECT_EQ(v->kernel, "/k/vmlinux");
  EXPECT_EQ(v->initrd, "/k/initrd");
  EXPECT_EQ(v->cmdline, "reboot=k panic=1 nomodule 8250.nr_uarts=0 i8042.noaux i8042.nomux i8042.dumbkbd "
                        "swiotlb=noforce root=/dev/vda ro");
  EXPECT_EQ(v->cpus, 2u);
  EXPECT_EQ(v->memory_mib, 256u);
  ASSERT_EQ(v->virtio.disks.size(), 2u);
  EXPECT_EQ(v->virtio.disks[0].path, "/r.ext4");
  EXPECT_TRUE(v->virtio.disks[0].readonly);
  EXPECT_EQ(v->virtio.disks[1].vhost_user, "/run/blk.sock");
  ASSERT_EQ(v->virtio.nets.size(), 1u);
  EXPECT_EQ(v->virtio.nets[0].backend, NetConfig::Backend::Tap);
  EXPECT_EQ(v->virtio.nets[0].target, "tap7");
  EXPECT_EQ(v->virtio.nets[0].mac, (std::array<uint8_t, 6>{2, 0, 0, 0, 0, 9}));
  EXPECT_TRUE(v->virtio.rng);
}

TEST(ApiVmConfig, APartuuidRootAfterTheUsersArguments) {
  api::FcConfig c = base();
  c.boot->boot_args = "console=ttyS0";
  c.drives.push_back({.drive_id = "root", .path_on_host = "/disk", .is_root_device = true, .is_read_only = false,
                      .partuuid = "0eaa91a0-01", .cache_type = "Unsafe", .io_engine = "Sync", .socket = ""});
  EXPECT_EQ(to_vm_config(c)->cmdline, "console=ttyS0 root=PARTUUID=0eaa91a0-01 rw");
}

TEST(ApiVmConfig, WhatEvmmCannotGiveIsRefused) {
  api::FcConfig c = base();
  c.vsock = api::FcVsock{3, "/v.sock"};
  EXPECT_NE(to_vm_config(c).error().context().find("vsock"), std::string::npos);
  c = base();
  c.machine.mem_size_mib = 1;
  EXPECT_EQ(to_vm_config(c).error().code(), EINVAL);
  c = base();
  c.boot.reset();
  EXPECT_EQ(to_vm_config(c).error().code(), EINVAL);
}

}  // namespace
}  // namespace evmm
