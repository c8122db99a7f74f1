// The control API from its socket inward: the HTTP parser (api/http.h) over a pipelined byte
// stream, each request it yields handled by the Firecracker endpoints (api/firecracker_api.h) with a
// VMM that refuses every other start, and the first request's body also tried as a --config-file;
// the whole stream also as a response, as `evmm ctl` parses one.
// Input: byte 0 picks small or default limits; the rest is the stream.
// Invariants: a parse consumes at least one byte and no more than it has; a body is exactly its
// Content-Length; every prefix of a whole request is "need more", never a different answer; a
// refusal's status is one http.h names. Every answer is 200 with a JSON object, 204 with no body, or
// 400 with exactly {"fault_message": string}. The instance leaves "Not started" only through a
// start the VMM accepted, and once started no request changes the configuration.
#include <nlohmann/json.hpp>

#include "api/firecracker_api.h"
#include "api/http.h"
#include "fuzz_input.h"

using namespace evmm;
using namespace evmm::api;
using json = nlohmann::json;

namespace {

struct FlakyVmm final : VmmActions {
  unsigned starts = 0, accepted = 0;
  Result<void> start(const FcConfig&) override {
    if (++starts % 2) return make_error(EIO, "the kernel could not be loaded");
    ++accepted;
    return {};
  }
  Result<void> pause() override { return {}; }
  Result<void> resume() override { return {}; }
  Result<void> send_ctrl_alt_del() override { return make_error(ENOTSUP, "no"); }
  Result<void> flush_metrics() override { return {}; }
};

void check_answer(const ApiResponse& r) {
  FUZZ_CHECK(r.status == 200 || r.status == 204 || r.status == 400);
  if (r.status == 204) {
    FUZZ_CHECK(r.body.empty());
    return;
  }
  const json j = json::parse(r.body, nullptr, false);
  FUZZ_CHECK(!j.is_discarded() && j.is_object());
  if (r.status == 400) FUZZ_CHECK(j.size() == 1 && j.contains("fault_message") && j["fault_message"].is_string());
}

}  // namespace

extern "C" int LLVMFuzzerInitialize(int*, char***) {
  fuzz_quiet_logs();
  return 0;
}

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  fuzz::Input in(data, size);
  const Limits limits = in.u8() & 1 ? Limits{.max_head = 256, .max_headers = 4, .max_body = 128} : Limits{};
  const auto rest = in.rest();
  std::string_view stream(reinterpret_cast<const char*>(rest.data()), rest.size());

  // The same bytes as a server's answer, as `evmm ctl` reads one.
  if (auto resp = parse_response(stream, limits.max_body)) {
    FUZZ_CHECK(resp->status >= 0 && resp->status <= 999);
    FUZZ_CHECK(resp->body.size() <= limits.max_body && resp->body.size() <= stream.size());
  }

  FlakyVmm vmm;
  FirecrackerApi fc("fuzz", vmm);
  bool first = true;
  while (!stream.empty()) {
    ParseResult p = parse_request(stream, limits);
    if (std::holds_alternative<std::monostate>(p)) break;
    if (auto* e = std::get_if<HttpError>(&p)) {
      FUZZ_CHECK(e->status == 400 || e->status == 413 || e->status == 431 || e->status == 501 || e->status == 505);
      FUZZ_CHECK(!e->message.empty());
      break;
    }
    const Parsed& req = std::get<Parsed>(p);
    FUZZ_CHECK(req.consumed > 0 && req.consumed <= stream.size());
    const auto length = req.request.header("content-length");
    FUZZ_CHECK(req.request.body.size() == (length ? std::stoull(std::string(*length)) : 0));
    for (size_t cut : {req.consumed - 1, req.consumed / 2})
      FUZZ_CHECK(std::holds_alternative<std::monostate>(parse_request(stream.substr(0, cut), limits)));

    const bool started = fc.state() != InstanceState::NotStarted;
    const std::string before = vm_config_json(fc.config());
    const unsigned accepted = vmm.accepted;
    const ApiResponse r = fc.handle(req.request.method, req.request.path, req.request.body);
    check_answer(r);
    if (started) FUZZ_CHECK(vm_config_json(fc.config()) == before);
    FUZZ_CHECK((fc.state() != InstanceState::NotStarted) == (vmm.accepted > 0));
    if (!started && fc.state() != InstanceState::NotStarted) FUZZ_CHECK(vmm.accepted == accepted + 1);

    if (first) {
      FirecrackerApi other("fuzz-config", vmm);
      (void)other.configure(req.request.body);
      FUZZ_CHECK(other.state() == InstanceState::NotStarted);
      first = false;
    }
    stream.remove_prefix(req.consumed);
  }
  return 0;
}
