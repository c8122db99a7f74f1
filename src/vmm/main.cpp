// evmm: the command-line VMM built on libevmm.
#include <poll.h>
#include <signal.h>
#include <sys/signalfd.h>
#include <unistd.h>

#include <CLI/CLI.hpp>
#include <cstdio>
#include <cstring>
#include <map>
#include <string>
#include <vector>

#include "base/log.h"
#include "debug/gdb_server.h"
#include "kvm/system.h"
#include "sandbox/seccomp.h"
#include "vcpu/assist.h"
#include "vmm/api_cmd.h"
#include "vmm/console.h"
#include "vmm/ctl_cmd.h"
#include "vmm/device_cmd.h"
#include "vmm/exit_status.h"
#include "vmm/required_caps.h"
#include "vmm/run_loop.h"
#include "vmm/virtio_options.h"
#include "vmm/vm.h"

namespace evmm {
namespace {

Result<SerialConfig> parse_serial(const std::string& s) {
  if (s == "stdio") return SerialConfig{SerialConfig::Kind::Stdio, {}};
  if (s == "none") return SerialConfig{SerialConfig::Kind::None, {}};
  if (s.rfind("file:", 0) == 0 && s.size() > 5) return SerialConfig{SerialConfig::Kind::File, s.substr(5)};
  return make_error(EINVAL, "--serial {}: expected stdio, none or file:PATH", s);
}

// Waits for gdb on ep with SIGINT and SIGTERM unblocked, so that they end evmm as during start-up.
Result<UniqueFd> wait_for_gdb(const GdbEndpoint& ep) {
  UniqueFd listener = TRY(gdb_listen(ep));
  std::fprintf(stderr, "evmm: waiting for gdb on %s (the guest starts when gdb continues)\n", ep.describe().c_str());
  sigset_t stop;
  sigemptyset(&stop);
  sigaddset(&stop, SIGINT);
  sigaddset(&stop, SIGTERM);
  pthread_sigmask(SIG_UNBLOCK, &stop, nullptr);
  auto conn = gdb_accept(listener.get());
  pthread_sigmask(SIG_BLOCK, &stop, nullptr);
  if (!ep.tcp) ::unlink(ep.path.c_str());  // one gdb per run: nobody else may connect
  return conn;
}

int cmd_run(const VmConfig& cfg, bool stats, const std::optional<GdbEndpoint>& gdb, const std::string& api_socket) {
  auto kvm = System::open();
  if (!kvm) {
    fail_line(fmt::format("cannot use KVM: {}", kvm.error().message()));
    return exit_status::kHost;
  }
  auto signals = take_signals();
  if (!signals) {
    fail_line(signals.error().message());
    return exit_status::kHost;
  }
  const int sigfd = signals->get();
  // gdb connects before the sandbox exists: the filters allow no socket calls (debug/gdb_server.h).
  UniqueFd gdb_conn;
  if (gdb) {
    auto c = wait_for_gdb(*gdb);
    if (!c) {
      fail_line(c.error().message());
      return exit_status::kHost;
    }
    gdb_conn = std::move(*c);
  }
  // The API binds its socket before the main thread's filter (which has no listen).
  std::unique_ptr<RunApi> api;
  if (!api_socket.empty()) {
    auto a = RunApi::start(api_socket, cfg);
    if (!a) {
      fail_line(a.error().message());
      return exit_status::kHost;
    }
    api = std::move(*a);
  }
  // The main thread's filter, before the first VM exists: every thread evmm starts inherits it, and
  // the vCPU and device threads narrow it further (sandbox/seccomp.h).
  if (cfg.seccomp && seccomp::supported()) {
    if (auto r = seccomp::install(seccomp::Role::Main); !r) {
      fail_line(r.error().message());
      return exit_status::kHost;
    }
  }

  std::optional<TerminalMode> term;
  if (cfg.serial.kind == SerialConfig::Kind::Stdio) term.emplace(STDIN_FILENO);
  for (;;) {
    auto vm = create_vm_interruptibly(*kvm, cfg);
    if (!vm) {
      fail_line(vm.error().message);
      return vm.error().exit_status;
    }
    std::unique_ptr<GdbServer> server;
    if (gdb) {
      Vm* v = vm->get();
      auto setup = [sandbox = cfg.seccomp && seccomp::supported()]() -> Result<void> {
        return sandbox ? seccomp::install(seccomp::Role::Debugger) : Result<void>{};
      };
      auto srv = GdbServer::start(std::move(gdb_conn), *v->debugger(), v->stopped_fd(),
                                  [v] { return v->exit_status().value_or(0); }, setup);
      if (!srv) {
        fail_line(srv.error().message());
        return exit_status::kHost;
      }
      server = std::move(*srv);
    }
    // Started before the API hears of it, so that a pause always finds running vCPUs.
    if (auto r = (*vm)->start(); !r) {
      fail_line(r.error().message());
      return exit_status::kHost;
    }
    if (api) api->running(vm->get());
    VmOutcome out = run_once(**vm, sigfd, stats);
    if (api) api->running(nullptr);
    server.reset();
    if (stats) print_stats(**vm);
    if (out.kind == VmOutcome::Kind::Reset && cfg.on_reset == OnReset::Reset) {
      LOG_INFO("guest reset: starting the VM afresh");
      continue;
    }
    return report_outcome(out);
  }
}

int cmd_caps() {
  auto kvm = System::open();
  if (!kvm) {
    fail_line(fmt::format("cannot use KVM: {}", kvm.error().message()));
    return exit_status::kHost;
  }
  bool ok = true;
  std::printf("KVM API version %d\n", kvm->api_version());
  for (const auto& c : known_capabilities()) {
    int v = kvm->check_extension(c.id);
    ok &= !(c.required && v <= 0);
    std::printf("%-36s %-4s %-8s %s\n", c.name, v > 0 ? "yes" : "no", c.required ? "required" : "optional", c.why);
  }
  if (!ok) {
    fail_line("a required capability is missing");
    return exit_status::kHost;
  }
  return 0;
}

}  // namespace
}  // namespace evmm

int main(int argc, char** argv) {
  using namespace evmm;
  CLI::App app{"evmm: a micro-VMM for Linux KVM"};
  // No subcommand with --api-sock: evmm as an orchestrator runs Firecracker's binary (vmm/api_cmd.h).
  app.require_subcommand(0, 1);
  ApiCommand apicmd;
  bool api_no_seccomp = false;
  app.add_option("--api-sock", apicmd.socket,
                 "Serve the Firecracker-compatible API on this Unix socket and wait to be configured (no subcommand)");
  app.add_option("--id", apicmd.id, "With --api-sock: the instance id GET / reports")->capture_default_str();
  app.add_option("--config-file", apicmd.config_file,
                 "With --api-sock: a Firecracker JSON configuration, booted at once");
  app.add_flag("--no-seccomp", api_no_seccomp, "With --api-sock: run without the seccomp filters (for debugging)");
  app.set_help_all_flag("--help-all");

  VmConfig cfg;
  std::string serial = "stdio", on_reset = "reset", on_suspend = "suspend";
  bool verbose = false, stats = false, no_seccomp = false;
  std::string gdb_spec;
  auto* run = app.add_subcommand("run", "Boot a guest image (Linux bzImage, multiboot, PVH or plain ELF; detected)");
  run->add_option("--kernel", cfg.kernel, "Guest image")->required();
  run->add_option("--initrd", cfg.initrd,
                  "File loaded as module 0 (multiboot), the first PVH module or Linux's initrd (ramdisk_image)");
  run->add_option("--cmdline", cfg.cmdline, "Guest command line");
  run->add_option("--boot", cfg.boot,
                  "How to boot Linux: auto (a bzImage through the 64-bit boot protocol, an ELF with a PVH note "
                  "through PVH), linux (the 64-bit boot protocol, also for an ELF vmlinux) or pvh")
      ->transform(CLI::CheckedTransformer(std::map<std::string, BootProtocol>{
          {"auto", BootProtocol::Auto}, {"linux", BootProtocol::Linux}, {"pvh", BootProtocol::Pvh}}))
      ->default_str("auto");
  run->add_option("--decompress", cfg.decompress,
                  "Where a bzImage's kernel is decompressed: host (by evmm; the kernel runs at its link-time "
                  "address, no KASLR) or guest (by the kernel's own decompressor; slow where CPL0 is emulated)")
      ->transform(CLI::CheckedTransformer(std::map<std::string, Decompress>{
          {"host", Decompress::Host}, {"guest", Decompress::Guest}}))
      ->default_str("host");
  run->add_option("--cpus", cfg.cpus, "Number of vCPUs")->check(CLI::Range(1, 255))->capture_default_str();
  run->add_option("--memory", cfg.memory_mib, "Guest RAM in MiB")->check(CLI::Range(2, 1 << 20))->capture_default_str();
  run->add_option("--serial", serial, "Serial output: stdio, file:PATH or none")->capture_default_str();
  run->add_option("--on-reset", on_reset, "What a guest reset does: reset (boot again) or exit (status 10)")
      ->check(CLI::IsMember({"reset", "exit"}))
      ->capture_default_str();
  run->add_option("--on-suspend", on_suspend,
                  "What a guest's ACPI S3 request does: suspend (every vCPU, until an RTC alarm or SIGUSR1), "
                  "exit (status 16) or ignore")
      ->check(CLI::IsMember({"suspend", "exit", "ignore"}))
      ->capture_default_str();
  run->add_flag("-v,--verbose", verbose, "Log what evmm does");
  run->add_flag("--stats", stats, "Print exit and assist counters when the VM stops");
  auto* gdb_opt = run->add_option("--gdb", gdb_spec,
                  "Serve the GDB remote protocol on PATH (a Unix socket) or PORT (TCP, 127.0.0.1 only); evmm waits "
                  "for gdb to attach and the vCPUs start stopped until gdb continues (like QEMU's -S -gdb). A guest "
                  "reset then ends the VM");
  std::vector<std::string> disks, filesystems, nets;
  std::string console = "serial";
  bool no_virtio_cmdline = false;
  run->add_option("--disk", disks,
                  "A virtio-blk disk: path=FILE[,readonly], or vhost-user=SOCKET for an external backend (repeatable)");
  run->add_option("--fs", filesystems,
                  "A virtio-fs file system served by virtiofsd: vhost-user=SOCKET,tag=TAG (repeatable)");
  run->add_option("--net", nets,
                  "A virtio-net device on a tap interface, a Unix datagram socket or an external vhost-user backend: "
                  "tap=NAME|socket=PATH|vhost-user=SOCKET[,mac=MAC] (repeatable)");
  run->add_option("--console", console, "The guest console: serial (ttyS0), virtio (adds hvc0, which writes where --serial does and takes standard "
                  "input) or vhost-user=SOCKET (hvc0 served by another process, such as evmm device console)")
      ->capture_default_str();
  run->add_flag("--rng", cfg.virtio.rng, "A virtio-rng device fed by getrandom, rate-limited");
  run->add_flag("--no-virtio-cmdline", no_virtio_cmdline,
                "Describe the virtio devices to the guest in the DSDT only, not as virtio_mmio.device= entries on its "
                "command line");
  run->add_flag("--no-seccomp", no_seccomp, "Run without the per-thread seccomp filters (for debugging)");
  std::string run_api_sock;
  run->add_option("--api-sock", run_api_sock,
                  "Serve the control API (Firecracker's endpoints and evmm's /evmm/) on this Unix socket while the VM runs");
  bool xen = false, xen_after_kvm = false;
  std::string xen_version = "4.17";
  uint16_t xen_domid = 1;
  auto* xen_opt = run->add_flag("--xen", xen, "Run the guest as a Xen HVM domain (CPUID leaves, hypercalls, event channels)");
  run->add_option("--xen-version", xen_version, "The Xen version the guest sees, MAJOR.MINOR")
      ->needs(xen_opt)->capture_default_str();
  run->add_option("--xen-domid", xen_domid, "The guest's domain id")
      ->needs(xen_opt)->check(CLI::Range(1, 0x7fef))->capture_default_str();
  run->add_flag("--xen-after-kvm", xen_after_kvm,
                "Keep KVM's CPUID leaves at 0x40000000 and put Xen's at 0x40000100")->needs(xen_opt);
  DeviceCommand devcmd;
  std::string device_disk;
  std::string device_net;
  auto* device = app.add_subcommand("device", "Serve one virtio device over vhost-user from this process (rng, blk, console or net)");
  device->add_option("kind", devcmd.kind, "The device: rng, blk (with --disk), console (on stdio) or net (with --net)")
      ->required()->check(CLI::IsMember({"rng", "blk", "console", "net"}));
  device->add_option("--socket", devcmd.socket, "The Unix socket to listen on; the frontend connects to it")->required();
  device->add_option("--disk", device_disk, "blk: the image, path=FILE[,readonly]");
  device->add_option("--net", device_net, "net: where the frames go, tap=NAME|socket=PATH[,mac=MAC]");
  device->add_flag("--stats", devcmd.stats, "Print the backend's and the device's counters when the frontend goes");
  bool device_no_seccomp = false;
  device->add_flag("--no-seccomp", device_no_seccomp, "Serve without the backend's seccomp filter (for debugging)");
  device->add_flag("-v,--verbose", verbose, "Log what evmm does");
  CtlCommand ctlcmd;
  auto* ctl = app.add_subcommand("ctl", "Talk to a running evmm's control API (see README, \"Control API\")");
  ctl->add_option("--api-sock", ctlcmd.socket, "The evmm's API socket")->required();
  ctl->add_flag("--json", ctlcmd.json, "Print the server's JSON as it is");
  ctl->add_option("command", ctlcmd.command, "info, config, start, pause, resume, vcpus, kick N, wake or metrics")->required();
  ctl->add_option("arg", ctlcmd.arg, "kick: the vCPU index");
  auto* version = app.add_subcommand("version", "Print evmm's version");
  auto* caps = app.add_subcommand("caps", "Print the host KVM capabilities evmm uses");

  try {
    app.parse(argc, argv);
  } catch (const CLI::CallForHelp& e) {
    return app.exit(e);
  } catch (const CLI::CallForAllHelp& e) {
    return app.exit(e);
  } catch (const CLI::ParseError& e) {
    std::fprintf(stderr, "evmm: %s (see evmm --help)\n", e.what());
    return exit_status::kUsage;
  }

  if (*version) {
    std::printf("evmm %s\n", EVMM_VERSION);
    return 0;
  }
  if (*caps) return cmd_caps();
  if (*ctl) return cmd_ctl(ctlcmd);
  if (app.get_subcommands().empty()) {
    if (apicmd.socket.empty()) {
      std::fprintf(stderr, "evmm: a subcommand (run, device, caps, version) or --api-sock PATH is needed (see evmm --help)\n");
      return exit_status::kUsage;
    }
    set_log_level(LogLevel::Warn);
    apicmd.seccomp = !api_no_seccomp;
    return cmd_api(apicmd);
  }

  set_log_level(verbose ? LogLevel::Info : LogLevel::Warn);
  auto bad = [](const Error& e) {
    std::fprintf(stderr, "evmm: %s\n", e.context().c_str());
    return exit_status::kUsage;
  };
  if (*device) {
    devcmd.seccomp = !device_no_seccomp;
    if (!device_disk.empty()) {
      auto d = parse_disk(device_disk);
      if (!d) return bad(d.error());
      devcmd.disk = *d;
    }
    if (!device_net.empty()) {
      auto n = parse_net(device_net);
      if (!n) return bad(n.error());
      devcmd.net = *n;
    }
    return cmd_device(devcmd);
  }
  auto s = parse_serial(serial);
  if (!s) return bad(s.error());
  cfg.serial = *s;
  cfg.seccomp = !no_seccomp;
  cfg.virtio.cmdline_entries = !no_virtio_cmdline;
  for (const auto& d : disks) {
    auto r = parse_disk(d);
    if (!r) return bad(r.error());
    cfg.virtio.disks.push_back(*r);
  }
  for (const auto& f : filesystems) {
    auto r = parse_fs(f);
    if (!r) return bad(r.error());
    cfg.virtio.filesystems.push_back(*r);
  }
  for (const auto& n : nets) {
    auto r = parse_net(n);
    if (!r) return bad(r.error());
    cfg.virtio.nets.push_back(*r);
  }
  if (auto c = parse_console(console, cfg.virtio); !c) return bad(c.error());
  if (xen) {
    XenConfig x;
    unsigned major, minor;
    char tail;
    if (std::sscanf(xen_version.c_str(), "%u.%u%c", &major, &minor, &tail) != 2 || major > 0xffff || minor > 0xffff) {
      std::fprintf(stderr, "evmm: --xen-version wants MAJOR.MINOR, such as 4.17, not '%s'\n", xen_version.c_str());
      return exit_status::kUsage;
    }
    x.cpuid.major = static_cast<uint16_t>(major);
    x.cpuid.minor = static_cast<uint16_t>(minor);
    x.cpuid.domid = xen_domid;
    x.cpuid.offset = xen_after_kvm ? 0x100 : 0;
    cfg.xen = x;
  }
  cfg.on_reset = on_reset == "exit" ? OnReset::Exit : OnReset::Reset;
  std::optional<GdbEndpoint> gdb;
  if (gdb_opt->count()) {
    auto ep = parse_gdb_endpoint(gdb_spec);
    if (!ep) return bad(ep.error());
    gdb = *ep;
    cfg.debugger = true;
    cfg.on_reset = OnReset::Exit;  // the gdb session belongs to this VM
  }
  cfg.on_suspend = on_suspend == "exit" ? OnSuspend::Exit : on_suspend == "ignore" ? OnSuspend::Ignore : OnSuspend::Suspend;
  return cmd_run(cfg, stats, gdb, run_api_sock);
}
