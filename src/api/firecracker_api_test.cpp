// The Firecracker endpoints against a recording VmmActions: the Go SDK's configure-and-start
// sequence, every endpoint's shape, and the refusals (with Firecracker's codes and messages).
#include "api/firecracker_api.h"

#include <gtest/gtest.h>
#include <nlohmann/json.hpp>

#include <vector>

namespace evmm::api {
namespace {

using json = nlohmann::json;

struct Recorder final : VmmActions {
  std::vector<std::string> calls;
  FcConfig started;
  bool fail_start = false;
  Result<void> start(const FcConfig& c) override {
    calls.push_back("start");
    if (fail_start) return make_error(ENOENT, "no such kernel");
    started = c;
    return {};
  }
  Result<void> pause() override { return calls.push_back("pause"), Result<void>{}; }
  Result<void> resume() override { return calls.push_back("resume"), Result<void>{}; }
  Result<void> send_ctrl_alt_del() override { return calls.push_back("ctrl-alt-del"), Result<void>{}; }
  Result<void> flush_metrics() override { return calls.push_back("flush"), Result<void>{}; }
};

class FirecrackerApiTest : public ::testing::Test {
 protected:
  Recorder vmm;
  FirecrackerApi api{"vm-1", vmm};

  void expect_204(std::string_view method, std::string_view path, std::string_view body) {
    auto r = api.handle(method, path, body);
    EXPECT_EQ(r.status, 204) << method << " " << path << ": " << r.body;
    EXPECT_EQ(r.body, "");
  }
  // A 400 whose fault_message contains `part`.
  void expect_fault(std::string_view method, std::string_view path, std::string_view body, std::string_view part) {
    auto r = api.handle(method, path, body);
    EXPECT_EQ(r.status, 400) << method << " " << path;
    const json j = json::parse(r.body, nullptr, false);
    ASSERT_TRUE(j.is_object() && j.size() == 1 && j["fault_message"].is_string()) << r.body;
    EXPECT_NE(j["fault_message"].get<std::string>().find(part), std::string::npos) << r.body;
  }
  json get(std::string_view path) {
    auto r = api.handle("GET", path, "");
    EXPECT_EQ(r.status, 200) << path;
    return json::parse(r.body, nullptr, false);
  }
};

// The order the Firecracker Go SDK's default handlers send (handlers.go, machine.go): it polls
// GET /machine-config until the socket answers, then logger, metrics, machine config (and GET it
// again), boot source, the drives with the root drive last, interfaces numbered from 1, vsock, and
// InstanceStart.
TEST_F(FirecrackerApiTest, TheGoSdksSequenceConfiguresAndStarts) {
  EXPECT_EQ(get("/machine-config")["vcpu_count"], 1);
  EXPECT_EQ(get("/")["state"], "Not started");
  expect_204("PUT", "/logger", R"({"log_path":"/tmp/fc.log","level":"debug","show_level":true,"show_log_origin":false})");
  expect_204("PUT", "/metrics", R"({"metrics_path":"/tmp/fc.metrics"})");
  expect_204("PUT", "/machine-config", R"({"vcpu_count":2,"mem_size_mib":256,"smt":false,"track_dirty_pages":false})");
  EXPECT_EQ(get("/machine-config")["mem_size_mib"], 256);
  expect_204("PUT", "/boot-source", R"({"kernel_image_path":"/k/vmlinux","boot_args":"console=ttyS0 reboot=k panic=1"})");
  expect_204("PUT", "/drives/data", R"({"drive_id":"data","path_on_host":"/img/data","is_root_device":false,"is_read_only":true})");
  expect_204("PUT", "/drives/root_drive",
             R"({"drive_id":"root_drive","path_on_host":"/img/root.ext4","is_root_device":true,"is_read_only":false})");
  expect_204("PUT", "/network-interfaces/1", R"({"iface_id":"1","host_dev_name":"tap0","guest_mac":"AA:FC:00:00:00:01"})");
  expect_204("PUT", "/vsock", R"({"guest_cid":3,"uds_path":"/tmp/v.sock"})");
  expect_204("PUT", "/entropy", "{}");
  expect_204("PUT", "/actions", R"({"action_type":"InstanceStart"})");
  ASSERT_EQ(vmm.calls, std::vector<std::string>{"start"});
  EXPECT_EQ(vmm.started.machine.vcpu_count, 2u);
  EXPECT_EQ(vmm.started.machine.mem_size_mib, 256u);
  EXPECT_EQ(vmm.started.boot->kernel_image_path, "/k/vmlinux");
  ASSERT_EQ(vmm.started.drives.size(), 2u);
  EXPECT_EQ(vmm.started.drives[0].drive_id, "root_drive");  // first, whatever the order it came in
  EXPECT_EQ(vmm.started.logger->level, "Debug");
  EXPECT_TRUE(vmm.started.drives[1].is_read_only);
  EXPECT_EQ(vmm.started.nets[0].guest_mac, (std::array<uint8_t, 6>{0xaa, 0xfc, 0, 0, 0, 1}));
  EXPECT_TRUE(vmm.started.entropy);

  const json info = get("/");
  EXPECT_EQ(info["id"], "vm-1");
  EXPECT_EQ(info["state"], "Running");
  EXPECT_TRUE(info["vmm_version"].is_string());
  EXPECT_TRUE(info["app_name"].is_string());
  EXPECT_TRUE(get("/version")["firecracker_version"].is_string());

  const json c = get("/vm/config");
  EXPECT_EQ(c["machine-config"]["vcpu_count"], 2);
  EXPECT_EQ(c["boot-source"]["boot_args"], "console=ttyS0 reboot=k panic=1");
  EXPECT_EQ(c["drives"][1]["drive_id"], "data");
  EXPECT_EQ(c["network-interfaces"][0]["guest_mac"], "aa:fc:00:00:00:01");
  EXPECT_EQ(c["vsock"]["guest_cid"], 3);
  for (const char* key : {"balloon", "cpu-config", "logger", "metrics", "mmds-config"}) EXPECT_TRUE(c[key].is_null()) << key;
  EXPECT_TRUE(c["drives"][0]["partuuid"].is_null());

  // Running: configuration is refused, the running VM's requests are taken.
  expect_fault("PUT", "/machine-config", R"({"vcpu_count":1,"mem_size_mib":128})", "not supported after starting");
  expect_fault("PUT", "/drives/x", R"({"drive_id":"x","path_on_host":"/y","is_root_device":false})", "after starting");
  expect_fault("PUT", "/actions", R"({"action_type":"InstanceStart"})", "after starting");
  expect_204("PATCH", "/vm", R"({"state":"Paused"})");
  EXPECT_EQ(get("/")["state"], "Paused");
  expect_204("PATCH", "/vm", R"({"state":"Resumed"})");
  expect_204("PUT", "/actions", R"({"action_type":"SendCtrlAltDel"})");
  expect_204("PUT", "/actions", R"({"action_type":"FlushMetrics"})");
  expect_fault("PATCH", "/drives/data", R"({"drive_id":"data","path_on_host":"/img/other"})", "backing file");
  EXPECT_EQ(vmm.calls, (std::vector<std::string>{"start", "pause", "resume", "ctrl-alt-del", "flush"}));
}

TEST_F(FirecrackerApiTest, MachineConfigPutReplacesPatchChangesAndGetShows) {
  json m = get("/machine-config");
  EXPECT_EQ(m["vcpu_count"], 1);
  EXPECT_EQ(m["mem_size_mib"], 128);
  expect_fault("PUT", "/machine-config", R"({"vcpu_count":2})", "missing field `mem_size_mib`");
  expect_204("PUT", "/machine-config", R"({"vcpu_count":4,"mem_size_mib":512,"track_dirty_pages":true})");
  expect_204("PATCH", "/machine-config", R"({"mem_size_mib":1024})");
  m = get("/machine-config");
  EXPECT_EQ(m["vcpu_count"], 4);
  EXPECT_EQ(m["mem_size_mib"], 1024);
  EXPECT_EQ(m["track_dirty_pages"], true);
  expect_fault("PATCH", "/machine-config", R"({"vcpu_count":0})", "Machine config error: The number of vCPUs must be");
  expect_fault("PATCH", "/machine-config", R"({"vcpu_count":33})", "The number of vCPUs must be");
  expect_fault("PATCH", "/machine-config", R"({"vcpu_count":256})", "invalid value for field `vcpu_count`");
  expect_fault("PATCH", "/machine-config", R"({"mem_size_mib":0})", "The memory size (MiB) is either 0");
  expect_fault("PATCH", "/machine-config", R"({"smt":true})", "SMT");
  expect_fault("PATCH", "/machine-config", "{}", "Empty PATCH request.");
  EXPECT_EQ(get("/machine-config")["vcpu_count"], 4);  // refusals change nothing
}

TEST_F(FirecrackerApiTest, BadRequestsAreRefusedWithTheirReason) {
  expect_fault("GET", "/nowhere/else", "", "Invalid request method and/or path: GET nowhere.");
  expect_fault("DELETE", "/drives/x", "", "Invalid request method and/or path: DELETE drives.");
  expect_fault("PATCH", "/boot-source", "{}", "Invalid request method and/or path: PATCH boot-source.");
  expect_fault("PUT", "/drives/", "{}", "Invalid request method and/or path");
  expect_fault("PUT", "/boot-source", "", "Empty PUT request.");
  expect_fault("PATCH", "/nowhere", "", "Empty PATCH request.");
  expect_fault("GET", "/", "{}", "GET request cannot have a body.");
  expect_fault("PUT", "/boot-source", "{not json", "An error occurred when deserializing the json body of a request: ");
  expect_fault("PUT", "/boot-source", "[1]", "expected a JSON object");
  expect_fault("PUT", "/boot-source", R"({"kernel_image_path":7})", "invalid type for field `kernel_image_path`");
  expect_fault("PUT", "/boot-source", R"({"boot_args":"x"})", "missing field `kernel_image_path`");
  expect_fault("PUT", "/boot-source", R"({"kernel_image_path":"k","extra":1})", "unknown field `extra`");
  expect_fault("PUT", "/machine-config", R"({"vcpu_count":-1,"mem_size_mib":1})", "field `vcpu_count`");
  expect_fault("PUT", "/machine-config", R"({"vcpu_count":1.5,"mem_size_mib":1})", "field `vcpu_count`");
  expect_fault("PUT", "/drives/a", R"({"drive_id":"b","path_on_host":"/x","is_root_device":false})",
               "The id from the path does not match the id from the body!");
  expect_fault("PUT", "/drives/a-b", R"({"drive_id":"a-b","path_on_host":"/x","is_root_device":false})",
               "API Resource IDs can only contain alphanumeric characters and underscores.");
  expect_fault("PUT", "/network-interfaces/e", R"({"iface_id":"f","host_dev_name":"tap9"})",
               "The id from the path [e] does not match the id from the body [f]!");
  expect_fault("PUT", "/drives/a", R"({"drive_id":"a","is_root_device":false})", "exactly one of path_on_host and socket");
  expect_fault("PUT", "/drives/a", R"({"drive_id":"a","path_on_host":"/x"})", "missing field `is_root_device`");
  expect_fault("PUT", "/drives/a", R"({"drive_id":"a","path_on_host":"/x","is_root_device":false,"cache_type":"Fast"})",
               "unknown variant `Fast`");
  expect_204("PUT", "/drives/a", R"({"drive_id":"a","path_on_host":"/x","is_root_device":true})");
  expect_fault("PUT", "/drives/b", R"({"drive_id":"b","path_on_host":"/y","is_root_device":true})", "root block device already exists");
  expect_fault("PATCH", "/drives/a", R"({"drive_id":"a","path_on_host":"/z"})", "not supported before starting");
  expect_fault("PUT", "/network-interfaces/e", R"({"iface_id":"e","host_dev_name":"tap0","guest_mac":"zz:00:00:00:00:00"})",
               "invalid MAC address");
  expect_204("PUT", "/network-interfaces/e", R"({"iface_id":"e","host_dev_name":"tap0"})");
  expect_fault("PUT", "/network-interfaces/f", R"({"iface_id":"f","host_dev_name":"tap0"})", "already in use");
  expect_204("PUT", "/network-interfaces/g", R"({"iface_id":"g","host_dev_name":"tap1","guest_mac":"02:00:00:00:00:01"})");
  expect_fault("PUT", "/network-interfaces/h", R"({"iface_id":"h","host_dev_name":"tap2","guest_mac":"02:00:00:00:00:01"})",
               "The MAC address is already in use: 02:00:00:00:00:01");
  expect_204("PUT", "/metrics", R"({"metrics_path":"/m"})");
  expect_fault("PUT", "/metrics", R"({"metrics_path":"/m2"})", "Reinitialization of metrics not allowed.");
  expect_fault("PUT", "/vsock", R"({"guest_cid":2,"uds_path":"/v"})", "reserved");
  expect_fault("PUT", "/actions", R"({"action_type":"Reboot"})", "unknown variant `Reboot`");
  expect_fault("PATCH", "/vm", R"({"state":"Paused"})", "not supported before starting");
  expect_fault("PUT", "/actions", R"({"action_type":"SendCtrlAltDel"})", "not supported before starting");
  expect_fault("PUT", "/actions", R"({"action_type":"InstanceStart"})",
               "Start microvm error: Cannot start microvm without kernel configuration.");
  EXPECT_TRUE(vmm.calls.empty());
  // A start the VMM refuses leaves the instance unstarted and says why.
  expect_204("PUT", "/boot-source", R"({"kernel_image_path":"/missing"})");
  vmm.fail_start = true;
  expect_fault("PUT", "/actions", R"({"action_type":"InstanceStart"})", "no such kernel");
  EXPECT_EQ(api.state(), InstanceState::NotStarted);
}

TEST_F(FirecrackerApiTest, AConfigFileGoesThroughTheSameRules) {
  ASSERT_TRUE(api.configure(R"({
    "boot-source": {"kernel_image_path": "/k", "boot_args": "console=ttyS0"},
    "machine-config": {"vcpu_count": 2, "mem_size_mib": 64},
    "drives": [{"drive_id": "rootfs", "path_on_host": "/r", "is_root_device": true, "is_read_only": true}],
    "network-interfaces": [], "vsock": null, "logger": null
  })"));
  EXPECT_EQ(api.config().machine.vcpu_count, 2u);
  EXPECT_EQ(api.config().drives.size(), 1u);
  auto bad = api.configure(R"({"machine-config": {"vcpu_count": 99, "mem_size_mib": 64}})");
  ASSERT_FALSE(bad);
  EXPECT_NE(bad.error().context().find("/machine-config: Machine config error"), std::string::npos) << bad.error().context();
  EXPECT_FALSE(api.configure(R"({"balloon": {"amount_mib": 1}})"));
  EXPECT_FALSE(api.configure("[]"));
}

}  // namespace
}  // namespace evmm::api
