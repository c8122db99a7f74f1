// The Firecracker-compatible endpoints: requests in, Firecracker's status codes and bodies out, so
// that an engine written for Firecracker (the Go SDK, firecracker-containerd, Kata, flintlock,
// firectl) drives evmm unchanged. No sockets here (api/api_server.h carries the bytes): this is
// the routing, the configuration state and the instance state machine, testable and fuzzable alone.
//
// Rules (Firecracker's src/firecracker/src/api_server and vmm/src/rpc_interface.rs):
//   - Before InstanceStart, PUT/PATCH build the configuration (api/fc_config.h); after it, they are
//     refused, except PATCH /vm (pause, resume) and the actions a running VM takes.
//   - Success is 204 with no body, or 200 with JSON for the GETs. Every refusal is 400 with
//     {"fault_message": "..."}; an unknown method or path is 400 too, as Firecracker answers it.
//   - The VMM's side (VmmActions) is called on the API thread with no lock of the VMM held here; it
//     must not wait on a vCPU (DESIGN.md, "Control API").
#pragma once

#include <mutex>
#include <string>
#include <string_view>

#include "api/fc_config.h"
#include "base/result.h"

namespace evmm::api {

enum class InstanceState { NotStarted, Running, Paused };

// What the API asks of the VMM once a request is valid. An error becomes the request's 400.
class VmmActions {
 public:
  virtual ~VmmActions() = default;
  virtual Result<void> start(const FcConfig& config) = 0;
  virtual Result<void> pause() = 0;
  virtual Result<void> resume() = 0;
  virtual Result<void> send_ctrl_alt_del() = 0;
  virtual Result<void> flush_metrics() = 0;
};

struct ApiResponse {
  int status;
  std::string body;  // JSON, or empty (204)
  std::string_view content_type = "application/json";  // of a non-empty body
};

class FirecrackerApi {
 public:
  // id: what GET / reports (Firecracker's --id, "anonymous-instance" when none).
  FirecrackerApi(std::string id, VmmActions& vmm) : id_(std::move(id)), vmm_(vmm) {}

  ApiResponse handle(std::string_view method, std::string_view path, std::string_view body);

  // Applies a whole configuration at once, as --config-file does (Firecracker's VmResources JSON:
  // "machine-config", "boot-source", "drives", "network-interfaces", ...); it starts nothing.
  Result<void> configure(std::string_view config_json);

  // A VM configured and started by other means (`evmm run --api-sock`): the API reports it as
  // running and refuses what Firecracker refuses after a start.
  void adopt_running(FcConfig config);

  FcConfig config() const;
  InstanceState state() const;

 private:
  ApiResponse put_or_patch(std::string_view method, std::string_view path, std::string_view body);
  ApiResponse action(std::string_view body);
  ApiResponse vm_state(std::string_view body);

  const std::string id_;
  VmmActions& vmm_;
  mutable std::mutex mu_;  // the configuration and the state; held across a VmmActions call
  FcConfig config_;
  InstanceState state_ = InstanceState::NotStarted;
};

std::string_view to_string(InstanceState s);
// {"fault_message": message}
std::string fault(std::string_view message);

}  // namespace evmm::api
