// `evmm --api-sock PATH [--id ID] [--config-file FILE]`: evmm as Firecracker's binary is run by an
// orchestrator. It serves the Firecracker-compatible API (api/firecracker_api.h) on PATH and waits
// to be configured; InstanceStart (or a --config-file, which starts at once, as Firecracker's does)
// builds the VM on the main thread, and the API thread then pauses and resumes it. evmm exits with
// the VM's status when the guest stops, removing the socket, as Firecracker's process ends with
// its VM.
#pragma once

#include <string>

#include "api/fc_config.h"
#include "base/result.h"
#include "vmm/config.h"

namespace evmm {

struct ApiCommand {
  std::string socket;
  std::string id = "anonymous-instance";
  std::string config_file;  // empty: wait for the API
  bool seccomp = true;
  bool stats = false;
};

int cmd_api(const ApiCommand& cmd);

// The VM a Firecracker configuration describes: its kernel and command line (Firecracker's default
// when boot_args is absent, then root=/dev/vda or root=PARTUUID=... with ro or rw for a root
// drive), vCPUs and memory, drives in order (the root drive first), tap interfaces, entropy.
// EINVAL for what evmm cannot give yet (vsock, a rate limiter) and for memory under 2 MiB.
Result<VmConfig> to_vm_config(const api::FcConfig& fc);

}  // namespace evmm
