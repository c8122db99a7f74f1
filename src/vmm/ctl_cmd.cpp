#include "vmm/ctl_cmd.h"

#include <nlohmann/json.hpp>

#include <cstdio>

#include "api/client.h"
#include "vmm/exit_status.h"

namespace evmm {
namespace {

using json = nlohmann::json;

struct Request {
  const char* method;
  std::string path;
  std::string body;
};

std::optional<Request> request_for(const CtlCommand& c) {
  if (c.command == "info") return Request{"GET", "/", ""};
  if (c.command == "config") return Request{"GET", "/vm/config", ""};
  if (c.command == "start") return Request{"PUT", "/actions", R"({"action_type":"InstanceStart"})"};
  if (c.command == "pause") return Request{"PATCH", "/vm", R"({"state":"Paused"})"};
  if (c.command == "resume") return Request{"PATCH", "/vm", R"({"state":"Resumed"})"};
  if (c.command == "vcpus") return Request{"GET", "/evmm/vm", ""};
  if (c.command == "kick") return Request{"PUT", "/evmm/vcpus/" + c.arg + "/kick", ""};
  if (c.command == "wake") return Request{"PUT", "/evmm/wake", ""};
  if (c.command == "metrics") return Request{"GET", "/evmm/metrics", ""};
  return std::nullopt;
}

std::string text(const json& j, const char* key) {
  auto it = j.find(key);
  return it != j.end() && it->is_string() ? it->get<std::string>() : "?";
}
uint64_t number(const json& j, const char* key) {
  auto it = j.find(key);
  return it != j.end() && it->is_number_unsigned() ? it->get<uint64_t>() : 0;
}

// The human form of an answer with a body.
void print_human(const CtlCommand& c, const api::HttpResponse& r) {
  if (c.command == "metrics") {
    std::fputs(r.body.c_str(), stdout);
    return;
  }
  const json j = json::parse(r.body, nullptr, false);
  if (j.is_discarded() || !j.is_object()) {
    std::printf("%s\n", r.body.c_str());
    return;
  }
  if (c.command == "info") {
    std::printf("%s: %s (%s %s)\n", text(j, "id").c_str(), text(j, "state").c_str(), text(j, "app_name").c_str(),
                text(j, "vmm_version").c_str());
  } else if (c.command == "vcpus" && j.contains("vcpus") && j["vcpus"].is_array()) {
    std::printf("VM %s\n", text(j, "state").c_str());
    for (const auto& v : j["vcpus"]) {
      if (!v.is_object()) continue;
      const json exits = v.value("exits", json::object()), req = v.value("exit_requests", json::object());
      std::printf("vCPU %lu: %s, %lu runs, exits pio %lu mmio %lu msr %lu request %lu, %lu exit requests (%lu kicks)\n",
                  number(v, "id"), v.value("suspended", false) ? "suspended" : "runnable", number(v, "runs"),
                  number(exits, "pio"), number(exits, "mmio"), number(exits, "msr"), number(exits, "request"),
                  number(req, "requested"), number(req, "kicks"));
    }
  } else {
    std::printf("%s\n", j.dump(2, ' ', false, json::error_handler_t::replace).c_str());
  }
}

}  // namespace

int cmd_ctl(const CtlCommand& c) {
  auto req = request_for(c);
  if (!req) {
    std::fprintf(stderr, "evmm ctl: unknown command %s (info, config, start, pause, resume, vcpus, kick N, wake, metrics)\n",
                 c.command.c_str());
    return exit_status::kUsage;
  }
  if ((c.command == "kick") == c.arg.empty()) {
    std::fprintf(stderr, "evmm ctl: %s\n", c.command == "kick" ? "kick needs a vCPU index" : "this command takes no argument");
    return exit_status::kUsage;
  }
  auto r = api::call(c.socket, req->method, req->path, req->body);
  if (!r) {
    std::fprintf(stderr, "evmm ctl: %s\n", r.error().message().c_str());
    return exit_status::kHost;
  }
  if (r->status >= 300) {
    const json j = json::parse(r->body, nullptr, false);
    const std::string why = j.is_object() && j.contains("fault_message") && j["fault_message"].is_string()
                                ? j["fault_message"].get<std::string>()
                                : r->body;
    std::fprintf(stderr, "evmm ctl: %s (HTTP %d)\n", why.c_str(), r->status);
    if (c.json) std::printf("%s\n", r->body.c_str());
    return 1;
  }
  if (c.json) std::printf("%s\n", r->body.empty() ? "{}" : r->body.c_str());
  else if (!r->body.empty()) print_human(c, *r);
  return 0;
}

}  // namespace evmm
