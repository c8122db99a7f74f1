#include "vmm/virtio_options.h"

#include <net/if.h>

#include <cstdio>
#include <string_view>
#include <vector>

namespace evmm {

namespace {

// "a=b,c" -> {{"a","b"},{"c",""}}; refuses an empty item.
Result<std::vector<std::pair<std::string, std::string>>> split(const char* option, const std::string& spec) {
  std::vector<std::pair<std::string, std::string>> out;
  size_t at = 0;
  while (at <= spec.size()) {
    size_t comma = spec.find(',', at);
    if (comma == std::string::npos) comma = spec.size();
    std::string item = spec.substr(at, comma - at);
    if (item.empty()) return make_error(EINVAL, "{} '{}': an empty item", option, spec);
    size_t eq = item.find('=');
    if (eq == std::string::npos) out.emplace_back(item, "");
    else out.emplace_back(item.substr(0, eq), item.substr(eq + 1));
    at = comma + 1;
  }
  return out;
}

Result<std::array<uint8_t, 6>> parse_mac(const std::string& s) {
  std::array<unsigned, 6> b{};
  char tail;
  if (s.size() != 17 || std::sscanf(s.c_str(), "%2x:%2x:%2x:%2x:%2x:%2x%c", &b[0], &b[1], &b[2], &b[3], &b[4], &b[5], &tail) != 6)
    return make_error(EINVAL, "--net mac={}: expected six hex bytes such as 52:54:00:12:34:56", s);
  if (b[0] & 1) return make_error(EINVAL, "--net mac={}: a multicast address (the first byte is odd)", s);
  std::array<uint8_t, 6> mac;
  for (int i = 0; i < 6; ++i) mac[i] = uint8_t(b[i]);
  return mac;
}

}  // namespace

Result<DiskConfig> parse_disk(const std::string& spec) {
  DiskConfig d;
  for (const auto& [key, value] : TRY(split("--disk", spec))) {
    if (key == "path" && !value.empty()) d.path = value;
    else if (key == "vhost-user" && !value.empty()) d.vhost_user = value;
    else if (key == "readonly" && (value.empty() || value == "on")) d.readonly = true;
    else if (key == "readonly" && value == "off") d.readonly = false;
    else
      return make_error(EINVAL, "--disk '{}': unknown or empty '{}' (expected path=FILE[,readonly] or vhost-user=SOCKET)",
                        spec, key);
  }
  if (d.path.empty() == d.vhost_user.empty())
    return make_error(EINVAL, "--disk '{}': give one of path=FILE or vhost-user=SOCKET", spec);
  if (!d.vhost_user.empty() && d.readonly)
    return make_error(EINVAL, "--disk '{}': a vhost-user backend decides read-only itself (its VIRTIO_BLK_F_RO)", spec);
  return d;
}

Result<FsConfig> parse_fs(const std::string& spec) {
  FsConfig f;
  for (const auto& [key, value] : TRY(split("--fs", spec))) {
    if (key == "vhost-user" && !value.empty()) f.vhost_user = value;
    else if (key == "tag" && !value.empty()) f.tag = value;
    else return make_error(EINVAL, "--fs '{}': unknown or empty '{}' (expected vhost-user=SOCKET,tag=TAG)", spec, key);
  }
  if (f.vhost_user.empty()) return make_error(EINVAL, "--fs '{}': no vhost-user=SOCKET (virtiofsd's socket)", spec);
  if (f.tag.empty()) return make_error(EINVAL, "--fs '{}': no tag=TAG (the name the guest mounts)", spec);
  // virtio 1.2 §5.11.4: the tag fills at most 36 bytes of the config space.
  if (f.tag.size() > 36) return make_error(EINVAL, "--fs tag={}: at most 36 bytes", f.tag);
  return f;
}

Result<NetConfig> parse_net(const std::string& spec) {
  NetConfig n;
  bool backend = false;
  for (const auto& [key, value] : TRY(split("--net", spec))) {
    if ((key == "tap" || key == "socket" || key == "vhost-user") && !value.empty()) {
      if (backend) return make_error(EINVAL, "--net '{}': give one of tap=, socket= or vhost-user=", spec);
      backend = true;
      n.backend = key == "tap" ? NetConfig::Backend::Tap
                  : key == "socket" ? NetConfig::Backend::Socket : NetConfig::Backend::VhostUser;
      n.target = value;
      if (key == "tap" && value.size() >= IFNAMSIZ)
        return make_error(EINVAL, "--net tap={}: an interface name has at most {} characters", value, IFNAMSIZ - 1);
    } else if (key == "mac") {
      n.mac = TRY(parse_mac(value));
    } else {
      return make_error(EINVAL, "--net '{}': unknown or empty '{}' (expected tap=NAME|socket=PATH|vhost-user=SOCKET[,mac=...])",
                        spec, key);
    }
  }
  if (!backend) return make_error(EINVAL, "--net '{}': no tap=NAME, socket=PATH or vhost-user=SOCKET", spec);
  return n;
}

Result<void> parse_console(const std::string& spec, VirtioConfig& v) {
  static constexpr std::string_view kVhostUser = "vhost-user=";
  v.console = false;
  v.console_vhost_user.clear();
  if (spec == "serial") return {};
  if (spec == "virtio") {
    v.console = true;
    return {};
  }
  if (spec.starts_with(kVhostUser) && spec.size() > kVhostUser.size()) {
    v.console = true;
    v.console_vhost_user = spec.substr(kVhostUser.size());
    return {};
  }
  return make_error(EINVAL, "--console '{}': expected serial, virtio or vhost-user=SOCKET", spec);
}

}  // namespace evmm
