// `evmm --api-sock PATH [--id ID] [--config-file FILE]`: evmm as Firecracker's binary is run by an
// orchestrator. It serves the Firecracker-compatible API (api/firecracker_api.h) on PATH and waits
// to be configured; InstanceStart (or a --config-file, which starts at once, as Firecracker's does)
// builds the VM on the main thread, and the API thread then pauses and resumes it. evmm exits with
// the VM's status when the guest stops, removing the socket, as Firecracker's process ends with
// its VM.
#pragma once

#include <memory>
#include <string>

#include "api/fc_config.h"
#include "base/result.h"
#include "vmm/config.h"
#include "vmm/vm.h"

namespace evmm {

struct ApiCommand {
  std::string socket;
  std::string id = "anonymous-instance";
  std::string config_file;  // empty: wait for the API
  bool seccomp = true;
  bool stats = false;
};

int cmd_api(const ApiCommand& cmd);

// The control API beside `evmm run --api-sock PATH`: the command line configured the VM and it runs
// at once, so the API starts in the Running state. It reports the VM (GET /, /vm/config, /evmm/),
// pauses and resumes it, and refuses configuration and InstanceStart as Firecracker refuses them
// after the start. Start it before the main thread's filter (it binds the socket).
class RunApi {
 public:
  static Result<std::unique_ptr<RunApi>> start(const std::string& socket, const VmConfig& cfg);
  ~RunApi();
  // Each VM the run loop builds (again after a guest reset); nullptr once it is gone.
  void running(Vm* vm);

 private:
  struct State;
  explicit RunApi(std::unique_ptr<State> s);
  std::unique_ptr<State> state_;
};

// The VM a Firecracker configuration describes: its kernel and command line (Firecracker's default
// when boot_args is absent, then root=/dev/vda or root=PARTUUID=... with ro or rw for a root
// drive), vCPUs and memory, drives in order (the root drive first), tap interfaces, entropy.
// EINVAL for what evmm cannot give yet (vsock, a rate limiter) and for memory under 2 MiB.
Result<VmConfig> to_vm_config(const api::FcConfig& fc);
// What GET /vm/config says of a VM the command line configured.
api::FcConfig to_fc_config(const VmConfig& cfg);

}  // namespace evmm
