#include "api/firecracker_api.h"

#include <nlohmann/json.hpp>

#include <algorithm>

namespace evmm::api {
namespace {

using json = nlohmann::json;

constexpr std::string_view kAfterStart = "The requested operation is not supported after starting the microVM.";
constexpr std::string_view kBeforeStart = "The requested operation is not supported before starting the microVM.";

// Strings from a client or the command line need not be UTF-8: never let dump() throw on them.
std::string dump(const json& j) { return j.dump(-1, ' ', false, json::error_handler_t::replace); }

ApiResponse no_content() { return {204, ""}; }
ApiResponse refused(std::string_view message) { return {400, fault(message)}; }
ApiResponse refused(const Error& e) { return refused(e.context()); }
ApiResponse ok(std::string body) { return {200, std::move(body)}; }

// "/drives/rootfs" with prefix "/drives/": "rootfs"; nullopt for another path or an empty or
// nested id.
std::optional<std::string_view> id_in(std::string_view path, std::string_view prefix) {
  if (!path.starts_with(prefix)) return std::nullopt;
  std::string_view id = path.substr(prefix.size());
  if (id.empty() || id.find('/') != std::string_view::npos) return std::nullopt;
  return id;
}

// Firecracker names only the path's first segment: "Invalid request method and/or path: GET foo."
ApiResponse unknown(std::string_view method, std::string_view path) {
  std::string_view first = path.substr(path.starts_with('/') ? 1 : 0);
  first = first.substr(0, first.find('/'));
  return refused(fmt::format("Invalid request method and/or path: {} {}.", method, first));
}

}  // namespace

std::string_view to_string(InstanceState s) {
  switch (s) {
    case InstanceState::NotStarted: return "Not started";
    case InstanceState::Running: return "Running";
    case InstanceState::Paused: return "Paused";
  }
  return "Not started";
}

std::string fault(std::string_view message) {
  return dump(json{{"fault_message", std::string(message)}});
}

void FirecrackerApi::adopt_running(FcConfig config) {
  std::lock_guard lock(mu_);
  config_ = std::move(config);
  state_ = InstanceState::Running;
}

FcConfig FirecrackerApi::config() const {
  std::lock_guard lock(mu_);
  return config_;
}

InstanceState FirecrackerApi::state() const {
  std::lock_guard lock(mu_);
  return state_;
}

ApiResponse FirecrackerApi::handle(std::string_view method, std::string_view path, std::string_view body) {
  // The body's presence is checked before the path, as Firecracker checks it.
  if (method == "GET" && !body.empty()) return refused("GET request cannot have a body.");
  if ((method == "PUT" || method == "PATCH") && body.empty()) return refused(fmt::format("Empty {} request.", method));
  if (method == "GET") {
    std::lock_guard lock(mu_);
    if (path == "/")
      return ok(dump(json{{"id", id_}, {"state", std::string(to_string(state_))}, {"vmm_version", EVMM_VERSION},
                          {"app_name", "evmm"}}));
    if (path == "/version") return ok(dump(json{{"firecracker_version", EVMM_VERSION}}));
    if (path == "/machine-config") return ok(machine_json(config_.machine));
    if (path == "/vm/config") return ok(vm_config_json(config_));
  } else if (method == "PUT" || method == "PATCH") {
    if (path == "/actions" && method == "PUT") return action(body);
    if (path == "/vm" && method == "PATCH") return vm_state(body);
    return put_or_patch(method, path, body);
  }
  return unknown(method, path);
}

ApiResponse FirecrackerApi::put_or_patch(std::string_view method, std::string_view path, std::string_view body) {
  const bool patch = method == "PATCH";
  std::lock_guard lock(mu_);
  auto known = [&]() -> bool {
    if (path == "/machine-config" || id_in(path, "/drives/") || id_in(path, "/network-interfaces/")) return true;
    return !patch && (path == "/boot-source" || path == "/vsock" || path == "/entropy" || path == "/logger" ||
                      path == "/metrics");
  };
  if (!known()) return unknown(method, path);
  // PATCH of a drive or an interface changes a running device (Firecracker's are post-boot only).
  const bool device_patch = patch && path != "/machine-config";
  if (device_patch && state_ == InstanceState::NotStarted) return refused(kBeforeStart);
  if (!device_patch && state_ != InstanceState::NotStarted) return refused(kAfterStart);

  if (path == "/machine-config") {
    auto m = parse_machine(body, config_.machine, patch);
    if (!m) return refused(m.error());
    config_.machine = *m;
  } else if (path == "/boot-source") {
    auto b = parse_boot_source(body);
    if (!b) return refused(b.error());
    config_.boot = *b;
  } else if (auto id = id_in(path, "/drives/")) {
    auto it = std::find_if(config_.drives.begin(), config_.drives.end(), [&](const FcDrive& d) { return d.drive_id == *id; });
    if (patch) {
      if (it == config_.drives.end()) return refused(fmt::format("Drive config error: No drive with id {}.", *id));
      auto d = patch_drive(body, *id, *it);
      if (!d) return refused(d.error());
      // Swapping a running drive's backing file needs the block device to reopen it: not yet.
      return refused("Drive config error: evmm cannot change a running drive's backing file yet.");
    }
    auto d = parse_drive(body, *id);
    if (!d) return refused(d.error());
    if (d->is_root_device)
      for (const auto& other : config_.drives)
        if (other.is_root_device && other.drive_id != d->drive_id)
          return refused("Drive config error: A root block device already exists!");
    if (it != config_.drives.end()) *it = *d;
    else config_.drives.push_back(*d);
    // The root drive is the first block device, /dev/vda, as Firecracker keeps it.
    std::stable_partition(config_.drives.begin(), config_.drives.end(), [](const FcDrive& x) { return x.is_root_device; });
  } else if (auto iface = id_in(path, "/network-interfaces/")) {
    auto it = std::find_if(config_.nets.begin(), config_.nets.end(), [&](const FcNet& n) { return n.iface_id == *iface; });
    if (patch) {
      // Firecracker's PATCH changes only the rate limiters, which evmm does not have yet.
      if (it == config_.nets.end()) return refused(fmt::format("Network config error: No interface with id {}.", *iface));
      return refused("Network config error: evmm's network device has no rate limiters yet.");
    }
    auto n = parse_net(body, *iface);
    if (!n) return refused(n.error());
    for (const auto& other : config_.nets) {
      if (other.iface_id == n->iface_id) continue;
      if (other.host_dev_name == n->host_dev_name)
        return refused(fmt::format("Network config error: The host device {} is already in use.", n->host_dev_name));
      if (n->guest_mac && other.guest_mac == n->guest_mac)
        return refused(fmt::format("Network config error: The MAC address is already in use: {}",
                                   format_mac(*n->guest_mac)));
    }
    if (it != config_.nets.end()) *it = *n;
    else config_.nets.push_back(*n);
  } else if (path == "/vsock") {
    auto v = parse_vsock(body);
    if (!v) return refused(v.error());
    config_.vsock = *v;
  } else if (path == "/entropy") {
    if (auto e = parse_entropy(body); !e) return refused(e.error());
    config_.entropy = true;
  } else if (path == "/logger") {
    auto l = parse_logger(body);
    if (!l) return refused(l.error());
    config_.logger = *l;
  } else if (path == "/metrics") {
    if (config_.metrics_path)
      return refused("Metrics error: Cannot initialize the metrics system due to bad user input: Reinitialization of "
                     "metrics not allowed.");
    auto m = parse_metrics(body);
    if (!m) return refused(m.error());
    config_.metrics_path = *m;
  }
  return no_content();
}

ApiResponse FirecrackerApi::action(std::string_view body) {
  auto a = parse_action(body);
  if (!a) return refused(a.error());
  std::lock_guard lock(mu_);
  if (*a == "InstanceStart") {
    if (state_ != InstanceState::NotStarted) return refused(kAfterStart);
    if (!config_.boot) return refused("Start microvm error: Cannot start microvm without kernel configuration.");
    if (auto r = vmm_.start(config_); !r) return refused(fmt::format("Start microvm error: {}", r.error().context()));
    state_ = InstanceState::Running;
    return no_content();
  }
  if (state_ == InstanceState::NotStarted) return refused(kBeforeStart);
  auto r = *a == "SendCtrlAltDel" ? vmm_.send_ctrl_alt_del() : vmm_.flush_metrics();
  if (!r) return refused(r.error());
  return no_content();
}

ApiResponse FirecrackerApi::vm_state(std::string_view body) {
  auto paused = parse_vm_state(body);
  if (!paused) return refused(paused.error());
  std::lock_guard lock(mu_);
  if (state_ == InstanceState::NotStarted) return refused(kBeforeStart);
  if (*paused) {
    if (auto r = vmm_.pause(); !r) return refused(r.error());
    state_ = InstanceState::Paused;
  } else {
    if (auto r = vmm_.resume(); !r) return refused(r.error());
    state_ = InstanceState::Running;
  }
  return no_content();
}

Result<void> FirecrackerApi::configure(std::string_view config_json) {
  json j = json::parse(config_json.begin(), config_json.end(), nullptr, false);
  if (j.is_discarded() || !j.is_object()) return make_error(EINVAL, "the configuration file is not a JSON object");
  // Each section goes through the endpoint that would take it, so the rules are the same.
  auto apply = [&](std::string_view path, const json& section) -> Result<void> {
    ApiResponse r = put_or_patch("PUT", path, dump(section));
    if (r.status == 204) return {};
    const json f = json::parse(r.body, nullptr, false);
    return make_error(EINVAL, "{}: {}", path, f.is_object() ? f.value("fault_message", r.body) : r.body);
  };
  for (const auto& [key, value] : j.items()) {
    if (value.is_null()) continue;
    if (key == "drives" || key == "network-interfaces") {
      if (!value.is_array()) return make_error(EINVAL, "{} is not a list", key);
      const char* id = key == "drives" ? "drive_id" : "iface_id";
      for (const auto& item : value) {
        if (!item.is_object() || !item.contains(id) || !item[id].is_string())
          return make_error(EINVAL, "an entry of {} has no {}", key, id);
        TRY(apply(fmt::format("/{}/{}", key, item[id].get<std::string>()), item));
      }
    } else if (key == "machine-config" || key == "boot-source" || key == "vsock" || key == "entropy" || key == "logger" ||
               key == "metrics") {
      TRY(apply("/" + key, value));
    } else {
      return make_error(EINVAL, "the configuration file has a section evmm does not know: {}", key);
    }
  }
  return {};
}

}  // namespace evmm::api
