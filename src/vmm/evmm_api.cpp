#include "vmm/evmm_api.h"

#include <nlohmann/json.hpp>

#include <charconv>

#include "vcpu/assist.h"

namespace evmm {
namespace {

using json = nlohmann::json;

api::ApiResponse refused(std::string_view message) { return {400, api::fault(message)}; }

json vcpu_json(Vcpu& v) {
  const VcpuStats& s = v.stats();
  const ExitRequests& r = v.exit_requests();
  return {{"id", v.id()},
          {"suspended", v.suspended()},
          {"runs", s.runs.load()},
          {"exits",
           {{"pio", s.pio_exits.load()},
            {"mmio", s.mmio_exits.load()},
            {"msr", s.msr_exits.load()},
            {"debug", s.debug_exits.load()},
            {"request", s.request_exits.load()},
            {"interrupted", s.interrupted.load()}}},
          {"exit_requests", {{"requested", r.requested()}, {"kicks", r.kicks()}, {"taken", s.requests_taken.load()}}},
          {"wakeups", s.wakeups.load()}};
}

std::string metrics(Vm& vm) {
  std::string out;
  auto family = [&](const char* name, const char* type, const char* help) {
    out += fmt::format("# HELP {} {}\n# TYPE {} {}\n", name, help, name, type);
  };
  family("evmm_vcpu_exits_total", "counter", "vCPU exits handled in userspace, by reason.");
  for (unsigned i = 0; i < vm.vcpu_count(); ++i) {
    const VcpuStats& s = vm.vcpu(i).stats();
    for (auto [reason, n] : {std::pair{"pio", &s.pio_exits}, {"mmio", &s.mmio_exits}, {"msr", &s.msr_exits},
                             {"debug", &s.debug_exits}, {"request", &s.request_exits}, {"interrupted", &s.interrupted}})
      out += fmt::format("evmm_vcpu_exits_total{{vcpu=\"{}\",reason=\"{}\"}} {}\n", i, reason, n->load());
  }
  family("evmm_vcpu_runs_total", "counter", "KVM_RUN calls.");
  for (unsigned i = 0; i < vm.vcpu_count(); ++i)
    out += fmt::format("evmm_vcpu_runs_total{{vcpu=\"{}\"}} {}\n", i, vm.vcpu(i).stats().runs.load());
  family("evmm_exit_requests_total", "counter", "Exit requests made to a vCPU (mechanism 1).");
  for (unsigned i = 0; i < vm.vcpu_count(); ++i)
    out += fmt::format("evmm_exit_requests_total{{vcpu=\"{}\"}} {}\n", i, vm.vcpu(i).exit_requests().requested());
  family("evmm_exit_request_kicks_total", "counter", "Exit requests that had to signal the vCPU thread.");
  for (unsigned i = 0; i < vm.vcpu_count(); ++i)
    out += fmt::format("evmm_exit_request_kicks_total{{vcpu=\"{}\"}} {}\n", i, vm.vcpu(i).exit_requests().kicks());
  family("evmm_vcpu_wakeups_total", "counter", "Wakeup events a suspended vCPU took (mechanism 5).");
  for (unsigned i = 0; i < vm.vcpu_count(); ++i)
    out += fmt::format("evmm_vcpu_wakeups_total{{vcpu=\"{}\"}} {}\n", i, vm.vcpu(i).stats().wakeups.load());
  family("evmm_vcpu_suspended", "gauge", "1 while the vCPU waits for a wakeup event.");
  for (unsigned i = 0; i < vm.vcpu_count(); ++i)
    out += fmt::format("evmm_vcpu_suspended{{vcpu=\"{}\"}} {}\n", i, vm.vcpu(i).suspended() ? 1 : 0);
  family("evmm_assists_total", "counter", "Instructions evmm completed for KVM's emulator, by kind.");
  for (unsigned i = 0; i < vm.vcpu_count(); ++i) {
    const VcpuStats& s = vm.vcpu(i).stats();
    for (size_t k = 0; k < s.assists.size(); ++k)
      if (uint64_t n = s.assists[k].load())
        out += fmt::format("evmm_assists_total{{vcpu=\"{}\",kind=\"{}\"}} {}\n", i, to_string(static_cast<AssistKind>(k)), n);
  }
  const VmStats v = vm.stats();
  family("evmm_unclaimed_accesses_total", "counter", "Guest accesses no device claimed.");
  out += fmt::format("evmm_unclaimed_accesses_total{{space=\"pio\"}} {}\n", v.unclaimed_pio);
  out += fmt::format("evmm_unclaimed_accesses_total{{space=\"mmio\"}} {}\n", v.unclaimed_mmio);
  family("evmm_vm_paused", "gauge", "1 while the VM is paused (PATCH /vm).");
  out += fmt::format("evmm_vm_paused {}\n", vm.paused() ? 1 : 0);
  return out;
}

}  // namespace

api::ApiResponse evmm_endpoint(Vm* vm, std::string_view method, std::string_view path) {
  if (!vm) return refused("the VM is not running");
  if (method == "GET" && path == "/evmm/vm") {
    json j = {{"state", vm->paused() ? "Paused" : "Running"}, {"vcpus", json::array()}};
    for (unsigned i = 0; i < vm->vcpu_count(); ++i) j["vcpus"].push_back(vcpu_json(vm->vcpu(i)));
    return {200, j.dump()};
  }
  if (method == "GET" && path == "/evmm/metrics") return {200, metrics(*vm), "text/plain; version=0.0.4"};
  if (method == "PUT" && path == "/evmm/wake") {
    vm->wake();
    return {204, ""};
  }
  constexpr std::string_view kVcpus = "/evmm/vcpus/", kKick = "/kick";
  if (method == "PUT" && path.starts_with(kVcpus) && path.ends_with(kKick) && path.size() > kVcpus.size() + kKick.size()) {
    const std::string_view index = path.substr(kVcpus.size(), path.size() - kVcpus.size() - kKick.size());
    unsigned i = 0;
    auto [end, ec] = std::from_chars(index.data(), index.data() + index.size(), i);
    if (ec != std::errc() || end != index.data() + index.size())
      return refused(fmt::format("`{}` is not a vCPU index", index));
    if (i >= vm->vcpu_count()) return refused(fmt::format("no vCPU {}: the VM has {}", i, vm->vcpu_count()));
    vm->vcpu(i).request_exit();
    return {204, ""};
  }
  return refused(fmt::format("Invalid request method and/or path: {} {}.", method, path));
}

}  // namespace evmm
