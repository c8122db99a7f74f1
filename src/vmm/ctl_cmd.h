// `evmm ctl --api-sock PATH [--json] COMMAND [ARG]`: the control API's client. Human-readable by
// default; --json prints the server's JSON as it came (or {} for an answer with no body), for
// scripts. A refusal prints its fault_message on stderr and exits 1; no server there, 4.
//
//   info            GET /                 the instance: id, state, version
//   config          GET /vm/config        the configuration, indented
//   start           PUT /actions          InstanceStart
//   pause, resume   PATCH /vm
//   vcpus           GET /evmm/vm          each vCPU: suspended or not, exits, exit requests
//   kick N          PUT /evmm/vcpus/N/kick
//   wake            PUT /evmm/wake
//   metrics         GET /evmm/metrics     Prometheus text
#pragma once

#include <string>

namespace evmm {

struct CtlCommand {
  std::string socket;
  std::string command;
  std::string arg;
  bool json = false;
};

int cmd_ctl(const CtlCommand& cmd);

}  // namespace evmm
