#include "vmm/vm_builder.h"

#include <fcntl.h>
#include <sys/stat.h>
#include <time.h>

#include "base/discard.h"
#include "base/log.h"
#include "boot/cpu_entry.h"
#include "devices/acpi_pm.h"
#include "devices/pv_control.h"
#include "memory/layout.h"
#include "vcpu/cpu_setup.h"
#include "vcpu/kick.h"
#include "vmm/console.h"
#include "vmm/exit_status.h"
#include "vmm/platform_devices.h"
#include "vmm/required_caps.h"
#include "vmm/sleep_policy.h"
#include "vmm/virtio_devices.h"

namespace evmm {

namespace {

VmOutcome host_error(const Error& e) { return {VmOutcome::Kind::HostError, exit_status::kHost, e.message()}; }
VmOutcome image_error(const Error& e) { return {VmOutcome::Kind::ImageError, exit_status::kImage, e.message()}; }

// Reads a whole file, refusing one larger than limit before reading it. O_NONBLOCK keeps open()
// from waiting for a FIFO's writer, so a FIFO or device is refused at once instead of hanging.
Result<std::vector<uint8_t>> read_file(const std::string& path, uint64_t limit, const char* what) {
  int fd = ::open(path.c_str(), O_RDONLY | O_CLOEXEC | O_NONBLOCK | O_NOCTTY);
  if (fd < 0) return errno_error("{} {}", what, path);
  UniqueFd f(fd);
  struct stat st;
  if (::fstat(fd, &st) < 0) return errno_error("{} {}", what, path);
  if (!S_ISREG(st.st_mode)) return make_error(EINVAL, "{} {} is not a regular file", what, path);
  if (static_cast<uint64_t>(st.st_size) > limit)
    return make_error(E2BIG, "{} {} ({} bytes) is larger than guest RAM", what, path, st.st_size);
  std::vector<uint8_t> data(static_cast<size_t>(st.st_size));
  size_t done = 0;
  while (done < data.size()) {
    ssize_t n = ::pread(fd, data.data() + done, data.size() - done, static_cast<off_t>(done));
    if (n < 0 && errno == EINTR) continue;
    if (n <= 0) return errno_error("reading {} {}", what, path);
    done += static_cast<size_t>(n);
  }
  return data;
}

}  // namespace

tl::expected<std::unique_ptr<Vm>, VmOutcome> VmBuilder::build(const System& kvm, const VmConfig& cfg) {
  if (cfg.cpus == 0 || cfg.cpus > 255)
    return tl::unexpected(VmOutcome{VmOutcome::Kind::HostError, exit_status::kUsage,
                                    fmt::format("--cpus {} is out of range (1 to 255)", cfg.cpus)});
  if (auto r = check_required_capabilities(kvm); !r) return tl::unexpected(host_error(r.error()));
  auto vmfd = kvm.create_vm();
  if (!vmfd) return tl::unexpected(host_error(vmfd.error()));
  auto mem = GuestMemory::create_pc(cfg.memory_mib * layout::MiB);
  if (!mem) return tl::unexpected(host_error(mem.error().wrap("guest memory")));
  auto stopped = EventFd::create();
  if (!stopped) return tl::unexpected(host_error(stopped.error()));

  std::unique_ptr<Vm> vm(new Vm(cfg, std::move(*vmfd), std::move(*mem), std::move(*stopped)));
  VmBuilder b(*vm);
  if (auto r = b.setup_platform(); !r) return tl::unexpected(host_error(r.error()));
  if (auto r = b.load_guest(); !r) return tl::unexpected(image_error(r.error()));
  if (auto r = b.create_vcpus(kvm); !r) return tl::unexpected(host_error(r.error()));
  return vm;
}

Result<void> VmBuilder::setup_platform() {
  Vm& vm = vm_;
  TRY(install_kick_handler());
  // Memory slots go in before the irqchip: once an irqchip exists, KVM waits for an SRCU grace
  // period when installing the first slot, which measured 5-10 ms here (bench/startup_bench).
  for (size_t i = 0; i < vm.mem_.regions().size(); ++i)
    vm.slots_.push_back(TRY(MemorySlot::add(vm.vm_, vm.mem_.kvm_region(i))));
  // KVM needs these pages (VMX real-mode TSS and identity map) outside guest RAM, before vCPUs exist.
  TRY(vm.vm_.set_tss_addr(layout::kKvmTss));
  TRY(vm.vm_.set_identity_map_addr(layout::kKvmIdentityMap));
  TRY(vm.vm_.create_irqchip());
  TRY(vm.vm_.create_pit2(KVM_PIT_SPEAKER_DUMMY));
  vm.routing_ = TRY(IrqRoutingTable::for_vm(vm.vm_));
  TRY(vm.routing_->install());

  vm.ioevents_ = std::make_unique<IoEventRegistry>(&vm.vm_);
  vm.out_ = std::make_unique<ConsoleOutput>(TRY(ConsoleOutput::open(vm.cfg_.serial)));
  vm.devices_ = TRY(PlatformDevices::create(vm.vm_, vm.mem_, vm.pio_, vm.mmio_, *vm.ioevents_, vm, *vm.out_, vm.cfg_, &vm.notifier_));
  vm.virtio_ = TRY(VirtioDevices::create(vm.cfg_, vm.mem_, vm.mmio_, *vm.ioevents_, *vm.devices_, *vm.out_));
  vm.sleep_ = std::make_unique<SleepPolicy>(vm.cfg_.on_suspend, vm.mem_, vm.vcpus_, vm.devices_->pm(),
                                            [&vm](VmOutcome o) { vm.finish(std::move(o)); });
  vm.devices_->pm().set_sleep_handler([s = vm.sleep_.get()](uint8_t slp_typ) { s->on_sleep(slp_typ); });
  // An RTC alarm wakes the VM from S3 when the guest enabled it as a wake source (PM1_EN.RTC_EN);
  // outside S3 it is an interrupt like any other (IRQ8 through a notifying line).
  vm.devices_->set_rtc_alarm_handler([s = vm.sleep_.get()] { s->on_rtc_alarm(); });
  auto pv = std::make_shared<PvControl>([&vm](uint32_t vcpu) {
    if (vcpu < vm.vcpus_.size())
      discard_error(vm.vcpus_[vcpu]->set_mp_state(MpState::Suspended), vm.discarded_errors_,
                    "pv-control: suspending vCPU {}", vcpu);
  });
  TRY(vm.pio_.insert(platform::kPvControlPort, PvControl::kRangeLen, pv, "pv-control"));
  return {};
}

Result<void> VmBuilder::load_guest() {
  const VmConfig& cfg = vm_.cfg_;
  const GuestMemory& mem = vm_.mem_;
  const uint64_t limit = mem.ram_bytes();
  auto image = TRY(read_file(cfg.kernel, limit, "kernel"));
  std::vector<uint8_t> initrd;
  // The devices' command-line entries go after the user's words, as Firecracker appends its own.
  std::string cmdline = cfg.cmdline;
  if (std::string entries = vm_.virtio_->cmdline(); !entries.empty())
    cmdline += (cmdline.empty() ? "" : " ") + entries;
  BootConfig boot{image, cmdline, {}, cfg.cpus, cfg.boot, cfg.decompress};
  if (!cfg.initrd.empty()) {
    initrd = TRY(read_file(cfg.initrd, limit, "initrd"));
    boot.modules.push_back({initrd, cfg.initrd});
  }
  auto entry = TRY_CTX(load_image(mem, boot), cfg.kernel);
  TRY(write_platform_tables(mem, cfg.cpus, vm_.virtio_->describe()));
  TRY(write_boot_tables(mem, entry));
  entry_ = entry;
  LOG_INFO("{}: {} image, entry {:#x}", cfg.kernel, to_string(entry.format), entry.rip);
  return {};
}

Result<void> VmBuilder::create_vcpus(const System& kvm) {
  Vm& vm = vm_;
  const VmConfig& cfg = vm.cfg_;
  auto cpuid = TRY(kvm.supported_cpuid());
  auto exit_fds = TRY(ExitFdWatcher::create());
  std::vector<VcpuFd> fds;
  fds.reserve(cfg.cpus);
  for (unsigned id = 0; id < cfg.cpus; ++id) {
    auto fd = TRY(vm.vm_.create_vcpu(id));
    if (cfg.xen) {
      CpuidTable table = cpuid;
      add_xen_cpuid_leaves(table, cfg.xen->cpuid, id);
      TRY(configure_vcpu(fd, table, id, cfg.cpus));
    } else {
      TRY(configure_vcpu(fd, cpuid, id, cfg.cpus));
    }
    // The BSP starts at the image's entry; APs stay in wait-for-SIPI in the kernel's LAPIC.
    if (id == 0) TRY(set_entry_state(fd, entry_));
    fds.push_back(std::move(fd));
  }
  // A vCPU's hooks are fixed when it is built, so Xen, which owns some of them, comes first.
  if (cfg.xen) TRY(setup_xen(fds.front()));
  vm.gate_ = std::make_unique<PauseGate>(cfg.cpus);
  if (cfg.debugger) {
    int flags = vm.vm_.check_extension(KVM_CAP_SET_GUEST_DEBUG2);
    vm.debugger_ = TRY(VcpuDebugger::create(cfg.cpus, vm.mem_, flags > 0 ? static_cast<uint32_t>(flags) : 0));
  }
  for (unsigned id = 0; id < cfg.cpus; ++id) {
    VcpuHooks hooks;
    hooks.io_events = vm.ioevents_.get();
    hooks.announcer = &vm.notifier_;
    hooks.pause_gate = vm.gate_.get();
    hooks.wake = [s = vm.sleep_.get()](Vcpu& v, const exit::Wakeup& w) { return s->on_wakeup(v, w); };
    if (vm.xen_) vm.xen_->add_vcpu_hooks(hooks);
    if (vm.debugger_) vm.debugger_->add_vcpu_hooks(hooks);
    vm.vcpus_.push_back(
        std::make_unique<Vcpu>(id, std::move(fds[id]), vm.mem_, vm.pio_, vm.mmio_, vm.stop_, exit_fds, std::move(hooks)));
  }
  if (vm.debugger_) {
    std::vector<Vcpu*> vcpus;
    for (auto& v : vm.vcpus_) vcpus.push_back(v.get());
    vm.debugger_->attach(std::move(vcpus));
    vm.debugger_->set_kill([&vm] {
      vm.finish({VmOutcome::Kind::Interrupted, exit_status::kInterrupted, "killed by gdb"});
    });
  }
  return {};
}

Result<void> VmBuilder::setup_xen(const VcpuFd& bsp) {
  Vm& vm = vm_;
  const VmConfig& cfg = vm.cfg_;
  XenHvm::Env env{
      .vm = &vm.vm_,
      .mem = &vm.mem_,
      .vcpus = cfg.cpus,
      .tsc_khz = TRY(bsp.get_tsc_khz()),
      .console = [out = vm.out_.get()](std::span<const uint8_t> b) { out->write(b); },
      .control = &vm,
      .notifier = &vm.notifier_,
      .vcpu = [&vm](uint32_t index) { return index < vm.vcpus_.size() ? vm.vcpus_[index].get() : nullptr; },
  };
  vm.xen_ = TRY(XenHvm::create(std::move(env), *cfg.xen));
  TRY(vm.xen_->install(vm.pio_));
  TRY(vm.devices_->event_loop().add(vm.xen_->timers()));
  // Xen system time starts now; the guest TSC is read on the BSP, whose clock the others share.
  constexpr uint32_t kTsc = 0x10;
  timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  auto tsc = TRY(bsp.get_msrs(std::span<const uint32_t>(&kTsc, 1)));
  vm.xen_->set_time_reference(tsc.front(), uint64_t(ts.tv_sec) * 1'000'000'000u + uint64_t(ts.tv_nsec));
  LOG_INFO("Xen {}.{} HVM: CPUID leaves at {:#x}, hypercall MSR {:#x}, domid {}", cfg.xen->cpuid.major,
           cfg.xen->cpuid.minor, xen_cpuid_base(cfg.xen->cpuid), cfg.xen->cpuid.hypercall_msr, cfg.xen->cpuid.domid);
  return {};
}

}  // namespace evmm
