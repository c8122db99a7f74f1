// `evmm --api-sock`: evmm run the way an orchestrator runs Firecracker. The test speaks HTTP on the
// socket as the Firecracker Go SDK does (one keep-alive connection, its order of calls), boots the
// test guest with a disk and entropy, pauses and resumes it, and checks the refusals a running VM
// gives. --config-file boots at once.
#include <fcntl.h>
#include <poll.h>
#include <sys/socket.h>
#include <sys/un.h>

#include <cstring>

#include "tests/kvm_test_util.h"

namespace evmm::testing {
namespace {

// A keep-alive HTTP/1.1 client on a Unix socket: status and body of each request.
class Client {
 public:
  explicit Client(const std::string& path) : fd_(::socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0)) {
    sockaddr_un addr{};
    addr.sun_family = AF_UNIX;
    std::memcpy(addr.sun_path, path.data(), path.size());
    connected_ = ::connect(fd_, reinterpret_cast<const sockaddr*>(&addr), sizeof addr) == 0;
  }
  ~Client() { ::close(fd_); }
  bool connected() const { return connected_; }

  std::pair<int, std::string> call(const std::string& method, const std::string& path, const std::string& body = "") {
    std::string req = method + " " + path + " HTTP/1.1\r\nHost: localhost\r\nAccept: application/json\r\n";
    if (!body.empty()) req += "Content-Type: application/json\r\nContent-Length: " + std::to_string(body.size()) + "\r\n";
    req += "\r\n" + body;
    if (::send(fd_, req.data(), req.size(), MSG_NOSIGNAL) != ssize_t(req.size())) return {-1, "send failed"};
    std::string in;
    for (;;) {
      const size_t head = in.find("\r\n\r\n");
      if (head != std::string::npos) {
        const size_t cl = in.find("Content-Length: ");
        const size_t len = cl < head ? std::stoul(in.substr(cl + 16)) : 0;
        if (in.size() >= head + 4 + len) return {std::stoi(in.substr(9, 3)), in.substr(head + 4, len)};
      }
      pollfd p{fd_, POLLIN, 0};
      char buf[4096];
      if (::poll(&p, 1, 30000) != 1) return {-1, "no answer: " + in};
      ssize_t n = ::recv(fd_, buf, sizeof buf, 0);
      if (n <= 0) return {-1, "closed: " + in};
      in.append(buf, size_t(n));
    }
  }

 private:
  int fd_;
  bool connected_ = false;
};

#define EXPECT_CALL_STATUS(client, status, ...)                 \
  do {                                                         \
    auto r_ = (client).call(__VA_ARGS__);                      \
    EXPECT_EQ(r_.first, status) << r_.second;                  \
  } while (0)

TEST(FirecrackerApi, AnOrchestratorConfiguresStartsPausesAndResumesTheGuest) {
  REQUIRE_KVM();
  TempDir dir("evmm-api");
  const std::string sock = dir / "firecracker.socket", disk = dir / "data.img";
  std::ofstream(disk).put('\0');
  ASSERT_EQ(::truncate(disk.c_str(), 1 << 20), 0);
  std::vector<std::string> transcript;
  ProcessOptions opts;
  opts.close_stdin = false;  // the guest waits for a line on its serial input, typed while it is paused
  opts.timeout = std::chrono::seconds(120);
  opts.while_running = [&](pid_t pid) {
    ASSERT_TRUE(wait_for_socket(sock));
    Client c(sock);
    ASSERT_TRUE(c.connected());
    auto log = [&](const std::pair<int, std::string>& r) {
      transcript.push_back(std::to_string(r.first) + " " + r.second);
      return r;
    };
    // The Go SDK's order: poll machine-config, then configure, then start.
    EXPECT_EQ(log(c.call("GET", "/machine-config")).first, 200);
    EXPECT_TRUE(has(log(c.call("GET", "/")).second, R"("state":"Not started")"));
    EXPECT_TRUE(has(log(c.call("GET", "/evmm/vm")).second, "the VM is not running"));
    EXPECT_CALL_STATUS(c, 204, "PUT", "/machine-config", R"({"vcpu_count":2,"mem_size_mib":64,"smt":false})");
    EXPECT_CALL_STATUS(c, 204, "PUT", "/boot-source",
                       R"({"kernel_image_path":")" + guest("testprog.mb.elf") + R"(","boot_args":"virtio serial poweroff"})");
    EXPECT_CALL_STATUS(c, 204, "PUT", "/drives/data",
                       R"({"drive_id":"data","path_on_host":")" + disk + R"(","is_root_device":false,"is_read_only":false})");
    EXPECT_CALL_STATUS(c, 204, "PUT", "/entropy", "{}");
    EXPECT_CALL_STATUS(c, 204, "PUT", "/actions", R"({"action_type":"InstanceStart"})");
    EXPECT_TRUE(has(log(c.call("GET", "/")).second, R"("state":"Running")"));
    // Running: configuration and a second start are refused with Firecracker's words.
    auto again = log(c.call("PUT", "/actions", R"({"action_type":"InstanceStart"})"));
    EXPECT_EQ(again.first, 400);
    EXPECT_TRUE(has(again.second, "not supported after starting the microVM")) << again.second;
    EXPECT_EQ(log(c.call("PUT", "/machine-config", R"({"vcpu_count":1,"mem_size_mib":64})")).first, 400);
    EXPECT_CALL_STATUS(c, 204, "PATCH", "/vm", R"({"state":"Paused"})");
    EXPECT_TRUE(has(log(c.call("GET", "/")).second, R"("state":"Paused")"));
    EXPECT_EQ(log(c.call("PATCH", "/vm", R"({"state":"Paused"})")).first, 400);  // pause while paused
    // evmm's own endpoints on the paused VM: its vCPUs, a kick (mechanism 1), the metrics.
    const auto vm = log(c.call("GET", "/evmm/vm"));
    EXPECT_EQ(vm.first, 200);
    EXPECT_TRUE(has(vm.second, R"("state":"Paused")")) << vm.second;
    EXPECT_EQ(occurrences(vm.second, R"("suspended":)"), 2u) << vm.second;
    // vCPU 1's exit requests, from /evmm/vm (keys in name order) or the metrics.
    auto requested = [&](const std::string& body) -> long {
      std::smatch m;
      if (!std::regex_search(body, m, std::regex(R"("exit_requests":\{"kicks":[0-9]+,"requested":([0-9]+),"taken":[0-9]+\},"exits":\{[^}]*\},"id":1,)")))
        return -1;
      return std::stol(m[1]);
    };
    const long before = requested(vm.second);
    ASSERT_GE(before, 0) << vm.second;
    EXPECT_CALL_STATUS(c, 204, "PUT", "/evmm/vcpus/1/kick");
    const auto kicked = log(c.call("GET", "/evmm/vm"));
    EXPECT_EQ(requested(kicked.second), before + 1) << kicked.second;
    const auto none = log(c.call("PUT", "/evmm/vcpus/2/kick"));
    EXPECT_EQ(none.first, 400);
    EXPECT_TRUE(has(none.second, "no vCPU 2: the VM has 2")) << none.second;
    const auto metrics = log(c.call("GET", "/evmm/metrics"));
    EXPECT_EQ(metrics.first, 200);
    EXPECT_TRUE(has(metrics.second, "# TYPE evmm_vcpu_exits_total counter\n")) << metrics.second;
    EXPECT_TRUE(std::regex_search(metrics.second, std::regex(R"(evmm_vcpu_exits_total\{vcpu="0",reason="pio"\} [0-9]+\n)")))
        << metrics.second;
    EXPECT_TRUE(has(metrics.second, fmt::format("evmm_exit_requests_total{{vcpu=\"1\"}} {}\n", before + 1))) << metrics.second;
    EXPECT_TRUE(has(metrics.second, "evmm_vm_paused 1\n")) << metrics.second;
    // evmm ctl, the client, on the same socket.
    const auto vcpus = evmm({"ctl", "--api-sock", sock, "vcpus"});
    EXPECT_EQ(vcpus.exit_status, 0) << vcpus.err;
    EXPECT_TRUE(has(vcpus.out, "VM Paused\nvCPU 0: ")) << vcpus.out;
    EXPECT_TRUE(has(vcpus.out, "\nvCPU 1: ")) << vcpus.out;
    const auto info = evmm({"ctl", "--api-sock", sock, "--json", "info"});
    EXPECT_TRUE(has(info.out, R"("id":"api-test")")) << info.out;
    const auto bad_kick = evmm({"ctl", "--api-sock", sock, "kick", "5"});
    EXPECT_EQ(bad_kick.exit_status, 1);
    EXPECT_TRUE(has(bad_kick.err, "evmm ctl: no vCPU 5: the VM has 2 (HTTP 400)")) << bad_kick.err;
    // The line the guest waits for goes in while it is paused; it reads it once resumed.
    const int in = ::open(fmt::format("/proc/{}/fd/0", pid).c_str(), O_WRONLY | O_CLOEXEC);
    ASSERT_GE(in, 0);
    ASSERT_EQ(::write(in, "go\n", 3), 3);
    ::close(in);
    EXPECT_CALL_STATUS(c, 204, "PATCH", "/vm", R"({"state":"Resumed"})");
    const auto cfg = log(c.call("GET", "/vm/config"));
    EXPECT_TRUE(has(cfg.second, R"("vcpu_count":2)")) << cfg.second;
    EXPECT_TRUE(has(cfg.second, disk)) << cfg.second;
  };
  auto r = evmm({"--api-sock", sock, "--id", "api-test"}, opts);
  std::string all;
  for (const auto& t : transcript) all += t + "\n";
  EXPECT_EQ(r.exit_status, 0) << r.out << r.err << all;
  EXPECT_TRUE(has(r.out, "virtio 0: blk at")) << r.out;
  EXPECT_TRUE(has(r.out, "virtio 1: rng at")) << r.out;
  EXPECT_TRUE(has(r.out, "2 sectors written and read back equal, flush ok")) << r.out;
  EXPECT_TRUE(has(r.out, "serial: got go")) << r.out;
  struct stat st;
  EXPECT_NE(::stat(sock.c_str(), &st), 0) << "the socket outlived evmm";
}

// `evmm run --api-sock`: the command line configured the VM, which runs at once; the API reports
// it, refuses configuration and a start, and pauses and resumes it.
TEST(FirecrackerApi, RunWithAnApiSocketIsControlledWhileItRuns) {
  REQUIRE_KVM();
  TempDir dir("evmm-api");
  const std::string sock = dir / "run.socket";
  ProcessOptions opts;
  opts.close_stdin = false;
  opts.timeout = std::chrono::seconds(60);
  std::string transcript;
  opts.while_running = [&](pid_t pid) {
    ASSERT_TRUE(wait_for_socket(sock));
    Client c(sock);
    ASSERT_TRUE(c.connected());
    auto call = [&](const std::string& m, const std::string& p, const std::string& b = "") {
      auto r = c.call(m, p, b);
      transcript += fmt::format("{} {} -> {} {}\n", m, p, r.first, r.second);
      return r;
    };
    EXPECT_TRUE(has(call("GET", "/").second, R"("state":"Running")"));
    const auto cfg = call("GET", "/vm/config");
    EXPECT_TRUE(has(cfg.second, R"("boot_args":"hello serial poweroff")")) << cfg.second;
    EXPECT_TRUE(has(cfg.second, R"("vcpu_count":2)")) << cfg.second;
    EXPECT_TRUE(has(call("PUT", "/actions", R"({"action_type":"InstanceStart"})").second, "after starting"));
    EXPECT_EQ(call("PATCH", "/vm", R"({"state":"Paused"})").first, 204);
    EXPECT_TRUE(has(call("GET", "/evmm/vm").second, R"("state":"Paused")"));
    const int in = ::open(fmt::format("/proc/{}/fd/0", pid).c_str(), O_WRONLY | O_CLOEXEC);
    ASSERT_GE(in, 0);
    ASSERT_EQ(::write(in, "go\n", 3), 3);
    ::close(in);
    EXPECT_EQ(call("PATCH", "/vm", R"({"state":"Resumed"})").first, 204);
  };
  auto r = evmm({"run", "--kernel", guest("testprog.mb.elf"), "--cmdline", "hello serial poweroff", "--cpus", "2",
                 "--api-sock", sock},
                opts);
  EXPECT_EQ(r.exit_status, 0) << r.out << r.err << transcript;
  EXPECT_TRUE(has(r.out, "serial: got go")) << r.out << transcript;
  struct stat st;
  EXPECT_NE(::stat(sock.c_str(), &st), 0);
}

TEST(FirecrackerApi, AConfigFileBootsAtOnceAndABadOneIsRefused) {
  REQUIRE_KVM();
  TempDir dir("evmm-api");
  const std::string sock = dir / "api.socket", cfg = dir / "vm.json";
  std::ofstream(cfg) << R"({"boot-source": {"kernel_image_path": ")" << guest("testprog.mb.elf")
                     << R"(", "boot_args": "hello poweroff"}, "machine-config": {"vcpu_count": 1, "mem_size_mib": 32}})";
  auto r = evmm({"--api-sock", sock, "--config-file", cfg});
  EXPECT_EQ(r.exit_status, 0) << r.err;
  EXPECT_TRUE(has(r.out, "hello")) << r.out;

  std::ofstream(cfg) << R"({"machine-config": {"vcpu_count": 64, "mem_size_mib": 32}})";
  r = evmm({"--api-sock", sock, "--config-file", cfg});
  EXPECT_EQ(r.exit_status, 2) << r.err;
  EXPECT_TRUE(has(r.err, "/machine-config: Machine config error: The number of vCPUs must be")) << r.err;
  auto gone = evmm({"ctl", "--api-sock", dir / "nobody.sock", "info"});
  EXPECT_EQ(gone.exit_status, 4);
  EXPECT_TRUE(has(gone.err, "evmm ctl: connect to")) << gone.err;
  r = evmm({});
  EXPECT_EQ(r.exit_status, 2);
  EXPECT_TRUE(has(r.err, "--api-sock PATH is needed")) << r.err;
}

}  // namespace
}  // namespace evmm::testing
