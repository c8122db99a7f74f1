#include "vmm/virtio_options.h"

#include <gtest/gtest.h>

namespace evmm {
namespace {

template <typename T>
std::string why(const std::string& spec, Result<T> (*f)(const std::string&)) {
  auto r = f(spec);
  return r ? "" : r.error().context();
}

TEST(VirtioOptions, Disk) {
  auto d = parse_disk("path=/tmp/a.img,readonly");
  ASSERT_TRUE(d);
  EXPECT_EQ(d->path, "/tmp/a.img");
  EXPECT_TRUE(d->readonly);
  EXPECT_FALSE(parse_disk("path=x")->readonly);
  EXPECT_NE(why("readonly", parse_disk).find("give one of path=FILE or vhost-user=SOCKET"), std::string::npos);
  auto v = parse_disk("vhost-user=/run/blk.sock");
  ASSERT_TRUE(v);
  EXPECT_EQ(v->vhost_user, "/run/blk.sock");
  EXPECT_EQ(v->path, "");
  EXPECT_NE(why("path=x,vhost-user=/s", parse_disk).find("give one of"), std::string::npos);
  EXPECT_NE(why("vhost-user=/s,readonly", parse_disk).find("decides read-only itself"), std::string::npos);
  EXPECT_NE(why("path=x,,readonly", parse_disk).find("empty item"), std::string::npos);
  EXPECT_NE(why("path=x,cache=none", parse_disk).find("unknown or empty 'cache'"), std::string::npos);
  EXPECT_NE(why("path=", parse_disk).find("'path'"), std::string::npos);
}

TEST(VirtioOptions, Fs) {
  auto f = parse_fs("vhost-user=/run/fs.sock,tag=hostshare");
  ASSERT_TRUE(f);
  EXPECT_EQ(f->vhost_user, "/run/fs.sock");
  EXPECT_EQ(f->tag, "hostshare");
  EXPECT_NE(why("tag=x", parse_fs).find("no vhost-user=SOCKET"), std::string::npos);
  EXPECT_NE(why("vhost-user=/s", parse_fs).find("no tag=TAG"), std::string::npos);
  EXPECT_NE(why("vhost-user=/s,tag=" + std::string(37, 'a'), parse_fs).find("at most 36 bytes"), std::string::npos);
  EXPECT_TRUE(parse_fs("vhost-user=/s,tag=" + std::string(36, 'a')));
  EXPECT_NE(why("vhost-user=/s,tag=x,cache=none", parse_fs).find("unknown or empty 'cache'"), std::string::npos);
  EXPECT_NE(why("vhost-user=/s,tag=", parse_fs).find("'tag'"), std::string::npos);
}

TEST(VirtioOptions, Net) {
  auto n = parse_net("tap=tap0,mac=52:54:00:12:34:56");
  ASSERT_TRUE(n);
  EXPECT_EQ(n->backend, NetConfig::Backend::Tap);
  EXPECT_EQ(n->target, "tap0");
  EXPECT_EQ((*n->mac)[5], 0x56);
  auto s = parse_net("socket=/run/x.sock");
  ASSERT_TRUE(s);
  EXPECT_EQ(s->backend, NetConfig::Backend::Socket);
  EXPECT_FALSE(s->mac);
  for (const char* bad : {"", "mac=52:54:00:12:34:56", "tap=a,socket=b", "tap=a,mac=53:54:00:12:34:56",
                          "tap=a,mac=52:54:00:12:34", "tap=a,mac=zz:54:00:12:34:56", "tap=0123456789abcdef", "tap=a,x=1"})
    EXPECT_FALSE(parse_net(bad)) << bad;
}

TEST(VirtioOptions, Console) {
  VirtioConfig v;
  ASSERT_TRUE(parse_console("virtio", v));
  EXPECT_TRUE(v.console_in_process());
  ASSERT_TRUE(parse_console("vhost-user=/run/c.sock", v));
  EXPECT_TRUE(v.console);
  EXPECT_FALSE(v.console_in_process());
  EXPECT_EQ(v.console_vhost_user, "/run/c.sock");
  ASSERT_TRUE(parse_console("serial", v));
  EXPECT_FALSE(v.console);
  EXPECT_TRUE(v.console_vhost_user.empty());
  for (const char* bad : {"hvc", "vhost-user=", "vhost-user", "virtio,x"}) EXPECT_FALSE(parse_console(bad, v)) << bad;
}

TEST(VirtioOptions, NetVhostUser) {
  auto n = parse_net("vhost-user=/run/n.sock,mac=52:54:00:12:34:57");
  ASSERT_TRUE(n);
  EXPECT_EQ(n->backend, NetConfig::Backend::VhostUser);
  EXPECT_EQ(n->target, "/run/n.sock");
  EXPECT_EQ((*n->mac)[5], 0x57);
  for (const char* bad : {"vhost-user=", "vhost-user=a,tap=b", "socket=a,vhost-user=b"}) EXPECT_FALSE(parse_net(bad)) << bad;
}

}  // namespace
}  // namespace evmm
