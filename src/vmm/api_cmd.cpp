#include "vmm/api_cmd.h"

#include <poll.h>
#include <signal.h>
#include <sys/signalfd.h>
#include <unistd.h>

#include <condition_variable>
#include <cstdio>
#include <fstream>
#include <mutex>
#include <optional>
#include <sstream>

#include "api/api_server.h"
#include "api/firecracker_api.h"
#include "base/eventfd.h"
#include "base/log.h"
#include "kvm/system.h"
#include "sandbox/seccomp.h"
#include "vmm/evmm_api.h"
#include "vmm/exit_status.h"
#include "vmm/run_loop.h"

namespace evmm {
namespace {

// Firecracker's kernel command line when boot_args is absent (vmm/src/vmm_config/boot_source.rs).
constexpr const char* kFirecrackerDefaultCmdline =
    "reboot=k panic=1 nomodule 8250.nr_uarts=0 i8042.noaux i8042.nomux i8042.dumbkbd swiotlb=noforce";

// The VMM side of the API. The API thread asks; the main thread, which builds and runs VMs, answers.
// A start waits for the main thread's verdict (the VM built, or why not), as Firecracker's
// InstanceStart answers once the VM is made.
class ApiVmm final : public api::VmmActions {
 public:
  ApiVmm(const EventFd& wake, bool seccomp) : wake_(wake), seccomp_(seccomp) {}

  Result<void> start(const api::FcConfig& fc) override {
    VmConfig cfg = TRY(to_vm_config(fc));
    cfg.seccomp = seccomp_;
    std::unique_lock lock(mu_);
    if (stopping_) return make_error(ESHUTDOWN, "evmm is stopping");
    pending_ = std::move(cfg);
    if (direct_) return {};  // the main thread itself asked (--config-file): it builds the VM next
    verdict_.reset();
    (void)wake_.signal();
    cv_.wait(lock, [&] { return verdict_.has_value() || stopping_; });
    if (!verdict_) return make_error(ESHUTDOWN, "evmm is stopping");
    auto v = std::move(*verdict_);
    verdict_.reset();
    return v;
  }
  Result<void> pause() override {
    std::lock_guard lock(mu_);
    if (!vm_) return make_error(ESRCH, "the VM is not running");
    return vm_->pause();
  }
  Result<void> resume() override {
    std::lock_guard lock(mu_);
    if (!vm_) return make_error(ESRCH, "the VM is not running");
    return vm_->resume();
  }
  // /evmm/ requests, against the VM while one runs.
  api::ApiResponse evmm(std::string_view method, std::string_view path) {
    std::lock_guard lock(mu_);
    return evmm_endpoint(vm_, method, path);
  }
  Result<void> send_ctrl_alt_del() override {
    return make_error(ENOTSUP, "SendCtrlAltDel: evmm's i8042 cannot inject key presses yet");
  }
  Result<void> flush_metrics() override { return make_error(ENOTSUP, "FlushMetrics: evmm writes no metrics file yet"); }

  // The main thread's side.
  void set_direct(bool d) {
    std::lock_guard lock(mu_);
    direct_ = d;
  }
  std::optional<VmConfig> take_pending() {
    std::lock_guard lock(mu_);
    return std::exchange(pending_, std::nullopt);
  }
  void answer(Result<void> verdict) {
    std::lock_guard lock(mu_);
    verdict_ = std::move(verdict);
    cv_.notify_all();
  }
  void running(Vm* vm) {
    std::lock_guard lock(mu_);
    vm_ = vm;
  }
  void stop() {
    std::lock_guard lock(mu_);
    stopping_ = true;
    vm_ = nullptr;
    cv_.notify_all();
  }

 private:
  const EventFd& wake_;
  const bool seccomp_;
  std::mutex mu_;
  std::condition_variable cv_;
  std::optional<VmConfig> pending_;
  std::optional<Result<void>> verdict_;
  Vm* vm_ = nullptr;
  bool direct_ = false;
  bool stopping_ = false;
};

// Waits for a start request or a stopping signal; the configuration, or nullopt for a signal.
std::optional<VmConfig> wait_for_start(ApiVmm& vmm, const EventFd& wake, int sigfd) {
  for (;;) {
    if (auto cfg = vmm.take_pending()) return cfg;
    pollfd fds[2] = {{wake.fd(), POLLIN, 0}, {sigfd, POLLIN, 0}};
    if (::poll(fds, 2, -1) < 0 && errno != EINTR) return std::nullopt;
    if (fds[0].revents) {
      uint64_t n;
      (void)!::read(wake.fd(), &n, sizeof n);
    }
    if (fds[1].revents) {
      signalfd_siginfo si;
      if (::read(sigfd, &si, sizeof si) == sizeof si && (si.ssi_signo == SIGINT || si.ssi_signo == SIGTERM)) {
        fail_line(fmt::format("stopped by signal {} before the VM started", si.ssi_signo));
        return std::nullopt;
      }
    }
  }
}

}  // namespace

struct RunApi::State {
  EventFd wake;
  ApiVmm vmm;
  api::FirecrackerApi fc;
  std::unique_ptr<api::ApiServer> server;
  State(EventFd w, std::string id) : wake(std::move(w)), vmm(wake, true), fc(std::move(id), vmm) {}
};

RunApi::RunApi(std::unique_ptr<State> s) : state_(std::move(s)) {}

RunApi::~RunApi() {
  state_->vmm.stop();
  state_->server.reset();  // joins the API thread before the rest goes
}

Result<std::unique_ptr<RunApi>> RunApi::start(const std::string& socket, const VmConfig& cfg) {
  auto s = std::make_unique<State>(TRY(EventFd::create()), "anonymous-instance");
  s->fc.adopt_running(to_fc_config(cfg));
  api::ApiServer::Options options;
  if (cfg.seccomp && seccomp::supported()) options.thread_setup = [] { return seccomp::install(seccomp::Role::Api); };
  State* st = s.get();
  s->server = TRY(api::ApiServer::start(
      socket,
      [st](const api::HttpRequest& r) {
        return r.path.starts_with("/evmm/") ? st->vmm.evmm(r.method, r.path) : st->fc.handle(r.method, r.path, r.body);
      },
      std::move(options)));
  return std::unique_ptr<RunApi>(new RunApi(std::move(s)));
}

void RunApi::running(Vm* vm) { state_->vmm.running(vm); }

api::FcConfig to_fc_config(const VmConfig& cfg) {
  api::FcConfig fc;
  fc.machine.vcpu_count = cfg.cpus;
  fc.machine.mem_size_mib = cfg.memory_mib;
  fc.boot = api::FcBootSource{cfg.kernel, cfg.initrd, cfg.cmdline};
  for (size_t i = 0; i < cfg.virtio.disks.size(); ++i) {
    const DiskConfig& d = cfg.virtio.disks[i];
    fc.drives.push_back({.drive_id = fmt::format("disk{}", i), .path_on_host = d.path, .is_root_device = false,
                         .is_read_only = d.readonly, .partuuid = "", .cache_type = "Unsafe", .io_engine = "Async",
                         .socket = d.vhost_user});
  }
  for (size_t i = 0; i < cfg.virtio.nets.size(); ++i)
    fc.nets.push_back({.iface_id = fmt::format("net{}", i), .host_dev_name = cfg.virtio.nets[i].target,
                       .guest_mac = cfg.virtio.nets[i].mac});
  fc.entropy = cfg.virtio.rng;
  return fc;
}

Result<VmConfig> to_vm_config(const api::FcConfig& fc) {
  if (!fc.boot) return make_error(EINVAL, "no kernel configured (PUT /boot-source)");
  if (fc.vsock) return make_error(EINVAL, "vsock is not in evmm yet");
  if (fc.machine.mem_size_mib < 2) return make_error(EINVAL, "evmm needs at least 2 MiB of guest memory");
  VmConfig cfg;
  cfg.kernel = fc.boot->kernel_image_path;
  cfg.initrd = fc.boot->initrd_path;
  cfg.cmdline = fc.boot->boot_args.value_or(kFirecrackerDefaultCmdline);
  cfg.cpus = fc.machine.vcpu_count;
  cfg.memory_mib = fc.machine.mem_size_mib;
  for (const auto& d : fc.drives) {
    if (d.is_root_device) {
      // After the user's arguments, as Firecracker appends them (builder.rs).
      cfg.cmdline += d.partuuid.empty() ? " root=/dev/vda" : " root=PARTUUID=" + d.partuuid;
      cfg.cmdline += d.is_read_only ? " ro" : " rw";
    }
    DiskConfig disk;
    disk.path = d.path_on_host;
    disk.readonly = d.is_read_only;
    disk.vhost_user = d.socket;
    cfg.virtio.disks.push_back(disk);
  }
  for (const auto& n : fc.nets)
    cfg.virtio.nets.push_back(NetConfig{NetConfig::Backend::Tap, n.host_dev_name, n.guest_mac});
  cfg.virtio.rng = fc.entropy;
  return cfg;
}

int cmd_api(const ApiCommand& cmd) {
  auto kvm = System::open();
  if (!kvm) {
    fail_line(fmt::format("cannot use KVM: {}", kvm.error().message()));
    return exit_status::kHost;
  }
  auto signals = take_signals();
  auto wake = EventFd::create();
  if (!signals || !wake) {
    fail_line(!signals ? signals.error().message() : wake.error().message());
    return exit_status::kHost;
  }
  ApiVmm vmm(*wake, cmd.seccomp);
  api::FirecrackerApi fc(cmd.id, vmm);
  if (!cmd.config_file.empty()) {
    std::ifstream in(cmd.config_file);
    std::stringstream text;
    text << in.rdbuf();
    if (!in) {
      fail_line(fmt::format("--config-file {}: cannot read it", cmd.config_file));
      return exit_status::kUsage;
    }
    if (auto r = fc.configure(text.str()); !r) {
      fail_line(fmt::format("--config-file {}: {}", cmd.config_file, r.error().context()));
      return exit_status::kUsage;
    }
    // Firecracker boots a configuration file's VM at once.
    vmm.set_direct(true);
    const api::ApiResponse r = fc.handle("PUT", "/actions", R"({"action_type":"InstanceStart"})");
    vmm.set_direct(false);
    if (r.status != 204) {
      fail_line(fmt::format("--config-file {}: {}", cmd.config_file, r.body));
      return exit_status::kUsage;
    }
  }
  // The API thread's own filter goes on first thing, before it reads a byte from a client.
  api::ApiServer::Options options;
  if (cmd.seccomp && seccomp::supported()) options.thread_setup = [] { return seccomp::install(seccomp::Role::Api); };
  auto server = api::ApiServer::start(
      cmd.socket,
      [&fc, &vmm](const api::HttpRequest& r) {
        return r.path.starts_with("/evmm/") ? vmm.evmm(r.method, r.path) : fc.handle(r.method, r.path, r.body);
      },
      std::move(options));
  if (!server) {
    fail_line(server.error().message());
    return exit_status::kHost;
  }
  if (cmd.seccomp && seccomp::supported()) {
    if (auto r = seccomp::install(seccomp::Role::Main); !r) {
      fail_line(r.error().message());
      vmm.stop();
      return exit_status::kHost;
    }
  }
  const int sigfd = signals->get();
  for (;;) {
    std::optional<VmConfig> cfg = wait_for_start(vmm, *wake, sigfd);
    if (!cfg) {
      vmm.stop();
      return exit_status::kInterrupted;
    }
    // Running before the start is answered: a pause that follows at once finds its vCPUs.
    auto vm = start_vm(*kvm, *cfg);
    if (!vm) {
      // The API answers the start with why; the instance stays unstarted and may be configured again.
      LOG_WARN("api: the VM could not be built: {}", vm.error().message);
      if (!cmd.config_file.empty()) {
        vmm.stop();
        return report_outcome(vm.error());
      }
      vmm.answer(make_error(EINVAL, "{}", vm.error().message));
      continue;
    }
    vmm.running(vm->get());
    vmm.answer({});
    for (;;) {
      VmOutcome out = run_once(**vm, sigfd, cmd.stats);
      vmm.running(nullptr);
      if (cmd.stats) print_stats(**vm);
      if (out.kind == VmOutcome::Kind::Reset && cfg->on_reset == OnReset::Reset) {
        vm->reset();
        vm = start_vm(*kvm, *cfg);
        if (!vm) {
          vmm.stop();
          return report_outcome(vm.error());
        }
        vmm.running(vm->get());
        continue;
      }
      vmm.stop();
      return report_outcome(out);
    }
  }
}

}  // namespace evmm
