// evmm's own endpoints under /evmm/ on the control API (DESIGN.md, "Control API"), beside the
// Firecracker ones: what Firecracker's API has no words for.
//
//   GET /evmm/vm              the VM: paused or running, and each vCPU with its counters, whether
//                             it is suspended (waiting for a wakeup event, mechanism 5), and its
//                             exit requests (mechanism 1)
//   PUT /evmm/vcpus/{i}/kick  an exit request to vCPU i (204); 400 for a vCPU that does not exist
//   PUT /evmm/wake            the platform's wake button: ends an ACPI S3 suspend (as SIGUSR1)
//   GET /evmm/metrics         Prometheus text: per-vCPU exits by reason, runs, exit requests and
//                             kicks, wakeups, assists; the VM's unclaimed accesses
//
// Every call reads atomics or signals eventfds: none waits for a vCPU. Without a running VM each
// answers 400 "the VM is not running" (the Firecracker side still configures it).
#pragma once

#include <string_view>

#include "api/firecracker_api.h"
#include "vmm/vm.h"

namespace evmm {

api::ApiResponse evmm_endpoint(Vm* vm, std::string_view method, std::string_view path);

}  // namespace evmm
