#include "api/fc_config.h"

#include <nlohmann/json.hpp>

#include <algorithm>
#include <array>
#include <cctype>
#include <initializer_list>

namespace evmm::api {
namespace {

using json = nlohmann::json;

// Firecracker words a body it cannot deserialize this way (serde's message inside).
template <typename... Args>
tl::unexpected<Error> undecodable(fmt::format_string<Args...> f, Args&&... args) {
  return make_error(EINVAL, "An error occurred when deserializing the json body of a request: {}.",
                    fmt::format(f, std::forward<Args>(args)...));
}

// A body as one JSON object whose keys are all among `fields`. Parsed without exceptions: a
// discarded value is what nlohmann gives for text that is not JSON.
Result<json> object(std::string_view body, std::initializer_list<std::string_view> fields) {
  json j = json::parse(body.begin(), body.end(), nullptr, false);
  if (j.is_discarded()) return undecodable("the body is not valid JSON");
  if (!j.is_object()) return undecodable("invalid type: expected a JSON object");
  for (const auto& [key, value] : j.items())
    if (std::find(fields.begin(), fields.end(), key) == fields.end()) return undecodable("unknown field `{}`", key);
  return j;
}

// Typed fields: nullopt when absent (or JSON null); an error when present with the wrong type.
Result<std::optional<std::string>> str(const json& j, const char* name) {
  auto it = j.find(name);
  if (it == j.end() || it->is_null()) return std::optional<std::string>();
  if (!it->is_string()) return undecodable("invalid type for field `{}`: expected a string", name);
  return std::optional<std::string>(it->get<std::string>());
}
Result<std::optional<bool>> boolean(const json& j, const char* name) {
  auto it = j.find(name);
  if (it == j.end() || it->is_null()) return std::optional<bool>();
  if (!it->is_boolean()) return undecodable("invalid type for field `{}`: expected a boolean", name);
  return std::optional<bool>(it->get<bool>());
}
Result<std::optional<uint64_t>> number(const json& j, const char* name, uint64_t max) {
  auto it = j.find(name);
  if (it == j.end() || it->is_null()) return std::optional<uint64_t>();
  if (!it->is_number_unsigned() || it->get<uint64_t>() > max)
    return undecodable("invalid value for field `{}`: expected an integer from 0 to {}", name, max);
  return std::optional<uint64_t>(it->get<uint64_t>());
}
template <typename T>
Result<T> required(Result<std::optional<T>> v, const char* name) {
  if (!v) return tl::unexpected(v.error());
  if (!*v) return undecodable("missing field `{}`", name);
  return **v;
}
Result<std::string> one_of(std::optional<std::string> v, const char* name, std::string current,
                           std::initializer_list<std::string_view> allowed) {
  if (!v) return current;
  if (std::find(allowed.begin(), allowed.end(), *v) == allowed.end())
    return undecodable("unknown variant `{}` for field `{}`", *v, name);
  return *v;
}

Result<std::array<uint8_t, 6>> parse_mac(const std::string& s) {
  std::array<uint8_t, 6> mac{};
  if (s.size() != 17) return undecodable("invalid MAC address `{}`", s);
  for (size_t i = 0; i < 6; ++i) {
    if (i < 5 && s[i * 3 + 2] != ':') return undecodable("invalid MAC address `{}`", s);
    unsigned v = 0;
    for (size_t k = 0; k < 2; ++k) {
      const char c = s[i * 3 + k];
      const int d = c >= '0' && c <= '9' ? c - '0' : c >= 'a' && c <= 'f' ? c - 'a' + 10 : c >= 'A' && c <= 'F' ? c - 'A' + 10 : -1;
      if (d < 0) return undecodable("invalid MAC address `{}`", s);
      v = v * 16 + unsigned(d);
    }
    mac[i] = uint8_t(v);
  }
  return mac;
}

// Firecracker's resource ids: [A-Za-z0-9_]+, the path's the same as the body's.
Result<void> valid_id(std::string_view id) {
  if (id.empty()) return make_error(EINVAL, "The ID cannot be empty.");
  if (!std::all_of(id.begin(), id.end(), [](char c) { return std::isalnum(static_cast<unsigned char>(c)) || c == '_'; }))
    return make_error(EINVAL, "API Resource IDs can only contain alphanumeric characters and underscores.");
  return {};
}

std::string dump(const json& j) { return j.dump(-1, ' ', false, json::error_handler_t::replace); }

// cpu_template is left out while it is None, as Firecracker leaves it out.
json machine_object(const FcMachine& m) {
  json j = {{"vcpu_count", m.vcpu_count}, {"mem_size_mib", m.mem_size_mib}, {"smt", m.smt},
            {"track_dirty_pages", m.track_dirty_pages}, {"huge_pages", "None"}};
  if (m.cpu_template != "None") j["cpu_template"] = m.cpu_template;
  return j;
}

}  // namespace

Result<FcMachine> parse_machine(std::string_view body, const FcMachine& current, bool patch) {
  const json j = TRY(object(body, {"vcpu_count", "mem_size_mib", "smt", "track_dirty_pages", "cpu_template", "huge_pages"}));
  FcMachine m = patch ? current : FcMachine{};
  if (patch && j.empty()) return make_error(EINVAL, "Empty PATCH request.");
  auto vcpus = TRY(number(j, "vcpu_count", 255));  // a u8 in Firecracker
  auto mem = TRY(number(j, "mem_size_mib", uint64_t(1) << 40));
  if (!patch && !vcpus) return undecodable("missing field `vcpu_count`");
  if (!patch && !mem) return undecodable("missing field `mem_size_mib`");
  if (vcpus && (*vcpus < 1 || *vcpus > 32))
    return make_error(EINVAL, "Machine config error: The number of vCPUs must be greater than 0, less than 32 and must be 1 "
                              "or an even number if SMT is enabled.");
  if (mem && *mem == 0)
    return make_error(EINVAL, "Machine config error: The memory size (MiB) is either 0, or not a multiple of the configured "
                              "page size.");
  if (vcpus) m.vcpu_count = uint32_t(*vcpus);
  if (mem) m.mem_size_mib = *mem;
  if (auto smt = TRY(boolean(j, "smt"))) {
    // evmm's vCPUs are not SMT siblings; Firecracker also refuses SMT where the host cannot give it.
    if (*smt) return make_error(EINVAL, "Machine config error: evmm does not give its vCPUs SMT siblings (smt must be false).");
    m.smt = false;
  }
  if (auto t = TRY(boolean(j, "track_dirty_pages"))) m.track_dirty_pages = *t;
  m.cpu_template = TRY(one_of(TRY(str(j, "cpu_template")), "cpu_template", m.cpu_template, {"None"}));
  if (auto hp = TRY(str(j, "huge_pages")); hp && *hp != "None")
    return make_error(EINVAL, "Machine config error: huge_pages `{}`: evmm backs guest memory with 4 KiB pages", *hp);
  return m;
}

Result<FcBootSource> parse_boot_source(std::string_view body) {
  const json j = TRY(object(body, {"kernel_image_path", "initrd_path", "boot_args"}));
  FcBootSource b;
  b.kernel_image_path = TRY(required(str(j, "kernel_image_path"), "kernel_image_path"));
  b.initrd_path = TRY(str(j, "initrd_path")).value_or("");
  b.boot_args = TRY(str(j, "boot_args"));
  return b;
}

Result<FcDrive> parse_drive(std::string_view body, std::string_view path_id) {
  const json j = TRY(object(body, {"drive_id", "path_on_host", "is_root_device", "is_read_only", "partuuid", "cache_type",
                                   "rate_limiter", "io_engine", "socket"}));
  FcDrive d;
  d.drive_id = TRY(required(str(j, "drive_id"), "drive_id"));
  if (d.drive_id != path_id) return make_error(EINVAL, "The id from the path does not match the id from the body!");
  TRY(valid_id(d.drive_id));
  d.is_root_device = TRY(required(boolean(j, "is_root_device"), "is_root_device"));
  d.path_on_host = TRY(str(j, "path_on_host")).value_or("");
  d.socket = TRY(str(j, "socket")).value_or("");
  if (d.path_on_host.empty() == d.socket.empty())
    return make_error(EINVAL, "Drive config error: Unable to create the virtio block device: Invalid block config. (give "
                              "exactly one of path_on_host and socket)");
  d.is_read_only = TRY(boolean(j, "is_read_only")).value_or(false);
  d.partuuid = TRY(str(j, "partuuid")).value_or("");
  d.cache_type = TRY(one_of(TRY(str(j, "cache_type")), "cache_type", d.cache_type, {"Unsafe", "Writeback"}));
  d.io_engine = TRY(one_of(TRY(str(j, "io_engine")), "io_engine", d.io_engine, {"Sync", "Async"}));
  if (auto it = j.find("rate_limiter"); it != j.end() && !it->is_null())
    return make_error(EINVAL, "rate_limiter is not supported by evmm's block device yet");
  return d;
}

Result<FcDrive> patch_drive(std::string_view body, std::string_view path_id, const FcDrive& current) {
  const json j = TRY(object(body, {"drive_id", "path_on_host", "rate_limiter"}));
  const std::string id = TRY(required(str(j, "drive_id"), "drive_id"));
  if (id != path_id) return make_error(EINVAL, "The id from the path does not match the id from the body!");
  FcDrive d = current;
  if (auto p = TRY(str(j, "path_on_host"))) d.path_on_host = *p;
  if (auto it = j.find("rate_limiter"); it != j.end() && !it->is_null())
    return make_error(EINVAL, "rate_limiter is not supported by evmm's block device yet");
  return d;
}

Result<FcNet> parse_net(std::string_view body, std::string_view path_id) {
  const json j = TRY(object(body, {"iface_id", "host_dev_name", "guest_mac", "mtu", "rx_rate_limiter", "tx_rate_limiter"}));
  FcNet n;
  n.iface_id = TRY(required(str(j, "iface_id"), "iface_id"));
  if (n.iface_id != path_id)
    return make_error(EINVAL, "The id from the path [{}] does not match the id from the body [{}]!", path_id, n.iface_id);
  TRY(valid_id(n.iface_id));
  n.host_dev_name = TRY(required(str(j, "host_dev_name"), "host_dev_name"));
  if (n.host_dev_name.empty() || n.host_dev_name.size() > 15)
    return make_error(EINVAL, "host_dev_name `{}` is not a tap interface name (1 to 15 bytes)", n.host_dev_name);
  if (auto mac = TRY(str(j, "guest_mac"))) n.guest_mac = TRY(parse_mac(*mac));
  if (auto mtu = TRY(number(j, "mtu", 65535)); mtu && *mtu != 1500)
    return make_error(EINVAL, "Network config error: evmm's network device has a fixed MTU of 1500, not {}", *mtu);
  for (const char* limiter : {"rx_rate_limiter", "tx_rate_limiter"})
    if (auto it = j.find(limiter); it != j.end() && !it->is_null())
      return make_error(EINVAL, "{} is not supported by evmm's network device yet", limiter);
  return n;
}

Result<FcVsock> parse_vsock(std::string_view body) {
  const json j = TRY(object(body, {"guest_cid", "uds_path", "vsock_id"}));
  FcVsock v;
  v.guest_cid = uint32_t(TRY(required(number(j, "guest_cid", UINT32_MAX), "guest_cid")));
  if (v.guest_cid < 3) return make_error(EINVAL, "guest_cid {} is reserved: a guest's CID is 3 or more", v.guest_cid);
  v.uds_path = TRY(required(str(j, "uds_path"), "uds_path"));
  (void)TRY(str(j, "vsock_id"));  // deprecated in Firecracker; accepted and ignored as there
  return v;
}

Result<void> parse_entropy(std::string_view body) {
  const json j = TRY(object(body, {"rate_limiter"}));
  if (auto it = j.find("rate_limiter"); it != j.end() && !it->is_null())
    return make_error(EINVAL, "rate_limiter is not supported by evmm's entropy device yet: it has its own fixed limit");
  return {};
}

Result<FcLogger> parse_logger(std::string_view body) {
  const json j = TRY(object(body, {"log_path", "level", "show_level", "show_log_origin", "module"}));
  FcLogger l;
  l.log_path = TRY(str(j, "log_path")).value_or("");
  // Case-insensitive, and "Warn" for "Warning", as Firecracker takes it.
  if (auto level = TRY(str(j, "level"))) {
    std::string v = *level;
    std::transform(v.begin(), v.end(), v.begin(), [](unsigned char c) { return char(std::tolower(c)); });
    static constexpr std::array<std::pair<std::string_view, std::string_view>, 7> kLevels{
        {{"error", "Error"}, {"warning", "Warning"}, {"warn", "Warning"}, {"info", "Info"}, {"debug", "Debug"},
         {"trace", "Trace"}, {"off", "Off"}}};
    auto it = std::find_if(kLevels.begin(), kLevels.end(), [&](const auto& p) { return p.first == v; });
    if (it == kLevels.end()) return undecodable("unknown variant `{}` for field `level`", *level);
    l.level = std::string(it->second);
  }
  l.show_level = TRY(boolean(j, "show_level")).value_or(false);
  l.show_log_origin = TRY(boolean(j, "show_log_origin")).value_or(false);
  l.module = TRY(str(j, "module")).value_or("");
  return l;
}

Result<std::string> parse_metrics(std::string_view body) {
  const json j = TRY(object(body, {"metrics_path"}));
  return TRY(required(str(j, "metrics_path"), "metrics_path"));
}

Result<std::string> parse_action(std::string_view body) {
  const json j = TRY(object(body, {"action_type"}));
  return TRY(one_of(TRY(required(str(j, "action_type"), "action_type")), "action_type", "",
                    {"InstanceStart", "SendCtrlAltDel", "FlushMetrics"}));
}

Result<bool> parse_vm_state(std::string_view body) {
  const json j = TRY(object(body, {"state"}));
  const std::string s = TRY(one_of(TRY(required(str(j, "state"), "state")), "state", "", {"Paused", "Resumed"}));
  return s == "Paused";
}

std::string format_mac(const std::array<uint8_t, 6>& m) {
  return fmt::format("{:02x}:{:02x}:{:02x}:{:02x}:{:02x}:{:02x}", m[0], m[1], m[2], m[3], m[4], m[5]);
}

std::string machine_json(const FcMachine& m) { return dump(machine_object(m)); }

std::string vm_config_json(const FcConfig& c) {
  // Firecracker's VmmConfig: every key present, null where unset; it reports logger, metrics and
  // cpu-config as null whatever was put, and so do we.
  json j = json::object();
  j["balloon"] = nullptr;
  j["drives"] = json::array();
  for (const auto& d : c.drives) {
    j["drives"].push_back({{"drive_id", d.drive_id},
                           {"partuuid", d.partuuid.empty() ? json(nullptr) : json(d.partuuid)},
                           {"is_root_device", d.is_root_device},
                           {"cache_type", d.cache_type},
                           {"is_read_only", d.is_read_only},
                           {"path_on_host", d.path_on_host.empty() ? json(nullptr) : json(d.path_on_host)},
                           {"rate_limiter", nullptr},
                           {"io_engine", d.io_engine},
                           {"socket", d.socket.empty() ? json(nullptr) : json(d.socket)}});
  }
  j["boot-source"] = {{"kernel_image_path", c.boot ? c.boot->kernel_image_path : ""},
                      {"initrd_path", c.boot && !c.boot->initrd_path.empty() ? json(c.boot->initrd_path) : json(nullptr)},
                      {"boot_args", c.boot && c.boot->boot_args ? json(*c.boot->boot_args) : json(nullptr)}};
  j["cpu-config"] = nullptr;
  j["logger"] = nullptr;
  j["machine-config"] = machine_object(c.machine);
  j["metrics"] = nullptr;
  j["mmds-config"] = nullptr;
  j["network-interfaces"] = json::array();
  for (const auto& n : c.nets)
    j["network-interfaces"].push_back({{"iface_id", n.iface_id},
                                       {"host_dev_name", n.host_dev_name},
                                       {"guest_mac", n.guest_mac ? json(format_mac(*n.guest_mac)) : json(nullptr)},
                                       {"rx_rate_limiter", nullptr},
                                       {"tx_rate_limiter", nullptr}});
  j["vsock"] = c.vsock ? json{{"guest_cid", c.vsock->guest_cid}, {"uds_path", c.vsock->uds_path}} : json(nullptr);
  j["entropy"] = c.entropy ? json{{"rate_limiter", nullptr}} : json(nullptr);
  return dump(j);
}

}  // namespace evmm::api
