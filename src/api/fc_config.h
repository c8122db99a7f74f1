// Firecracker's VM configuration model, as its API's JSON bodies carry it (Firecracker's
// src/firecracker/swagger/firecracker.yaml): machine-config, boot-source, drives, network
// interfaces, vsock, entropy, logger, metrics. Each parse_* takes a request body and either fills
// the model or says, in one line, what is wrong with it: not JSON, not an object, a missing
// required field, a field of the wrong type or out of range, a field the object does not have
// (Firecracker's bodies deny unknown fields). to_json gives the shapes GET /vm/config answers.
#pragma once

#include <array>
#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "base/result.h"

namespace evmm::api {

struct FcMachine {
  uint32_t vcpu_count = 1;   // 1..32
  uint64_t mem_size_mib = 128;
  bool smt = false;
  bool track_dirty_pages = false;
  std::string cpu_template = "None";
};

struct FcBootSource {
  std::string kernel_image_path;
  std::string initrd_path;  // empty: none
  std::optional<std::string> boot_args;  // none: Firecracker's default command line
};

struct FcDrive {
  std::string drive_id;
  std::string path_on_host;
  bool is_root_device = false;
  bool is_read_only = false;
  std::string partuuid;
  std::string cache_type = "Unsafe";  // Unsafe or Writeback
  std::string io_engine = "Sync";     // Sync or Async
  std::string socket;                 // a vhost-user-blk backend instead of path_on_host
};

struct FcNet {
  std::string iface_id;
  std::string host_dev_name;
  std::optional<std::array<uint8_t, 6>> guest_mac;
};

struct FcVsock {
  uint32_t guest_cid = 0;  // 3 and up
  std::string uds_path;
};

struct FcLogger {
  std::string log_path;
  std::string level = "Info";
  bool show_level = false;
  bool show_log_origin = false;
  std::string module;
};

struct FcConfig {
  FcMachine machine;
  std::optional<FcBootSource> boot;
  std::vector<FcDrive> drives;  // in the order they were first put
  std::vector<FcNet> nets;
  std::optional<FcVsock> vsock;
  bool entropy = false;
  std::optional<FcLogger> logger;
  std::optional<std::string> metrics_path;
};

// PUT replaces the whole machine configuration (vcpu_count and mem_size_mib required); PATCH
// changes only the fields it names.
Result<FcMachine> parse_machine(std::string_view body, const FcMachine& current, bool patch);
Result<FcBootSource> parse_boot_source(std::string_view body);
// The id in the path must be the body's drive_id. PATCH changes path_on_host of an existing drive.
Result<FcDrive> parse_drive(std::string_view body, std::string_view path_id);
Result<FcDrive> patch_drive(std::string_view body, std::string_view path_id, const FcDrive& current);
Result<FcNet> parse_net(std::string_view body, std::string_view path_id);
Result<FcVsock> parse_vsock(std::string_view body);
Result<void> parse_entropy(std::string_view body);
Result<FcLogger> parse_logger(std::string_view body);
Result<std::string> parse_metrics(std::string_view body);
// {"action_type": "InstanceStart" | "SendCtrlAltDel" | "FlushMetrics"}: the action's name.
Result<std::string> parse_action(std::string_view body);
// {"state": "Paused" | "Resumed"}: true for Paused.
Result<bool> parse_vm_state(std::string_view body);

std::string machine_json(const FcMachine& m);
std::string format_mac(const std::array<uint8_t, 6>& mac);  // "aa:fc:00:00:00:01"
std::string vm_config_json(const FcConfig& c);

}  // namespace evmm::api
