// What `evmm run` and `evmm --api-sock` share: building a VM with start-up signals live, running
// it until it stops while the signalfd turns signals into its controls, and the counters.
#pragma once

#include <tl/expected.hpp>

#include <memory>
#include <string>

#include "base/fd.h"
#include "base/result.h"
#include "kvm/system.h"
#include "vmm/config.h"
#include "vmm/vm.h"
#include "vmm/vm_outcome.h"

namespace evmm {

// Blocks SIGINT, SIGTERM, SIGUSR1 and SIGUSR2 for every thread to come and returns a signalfd for
// them; until a VM runs, SIGINT and SIGTERM end evmm from a handler (exit_during_startup). SIGPIPE
// is ignored.
Result<UniqueFd> take_signals();
tl::expected<std::unique_ptr<Vm>, VmOutcome> create_vm_interruptibly(const System& kvm, const VmConfig& cfg);
// create_vm_interruptibly, then the vCPUs started: a start that fails is a host error.
tl::expected<std::unique_ptr<Vm>, VmOutcome> start_vm(const System& kvm, const VmConfig& cfg);
// Waits for a started VM to stop. Callers start it first, so that whoever controls it (an API, a
// debugger) only ever sees running vCPUs.
VmOutcome run_once(Vm& vm, int sigfd, bool stats);
// Says on stderr how a VM ended (nothing for a power-off or a debug exit) and returns its status.
int report_outcome(const VmOutcome& out);
void print_stats(const Vm& vm);
// "evmm: msg" on stderr: how the CLI says what stopped it.
void fail_line(const std::string& msg);

}  // namespace evmm
