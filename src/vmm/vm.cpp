#include "vmm/vm.h"

#include <fcntl.h>
#include <sys/stat.h>
#include <time.h>

#include "base/discard.h"
#include "base/log.h"
#include "boot/acpi_lookup.h"
#include "boot/boot.h"
#include "devices/acpi_pm.h"
#include "devices/pv_control.h"
#include "devices/serial.h"
#include "memory/layout.h"
#include "sandbox/seccomp.h"
#include "vcpu/cpu_setup.h"
#include "vcpu/kick.h"
#include "vmm/console.h"
#include "vmm/exit_status.h"
#include "vmm/platform.h"
#include "vmm/required_caps.h"

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

Vm::Vm(VmConfig cfg, VmFd vm, GuestMemory mem, EventFd stopped)
    : cfg_(std::move(cfg)), vm_(std::move(vm)), mem_(std::move(mem)), stopped_(std::move(stopped)) {}

Vm::~Vm() {
  if (!threads_.empty()) {
    interrupt("VM destroyed while running");
    wait();
  }
}

tl::expected<std::unique_ptr<Vm>, VmOutcome> Vm::create(const System& kvm, const VmConfig& cfg) {
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
  if (auto r = vm->setup_platform(); !r) return tl::unexpected(host_error(r.error()));
  if (auto r = vm->load_guest(); !r) return tl::unexpected(image_error(r.error()));
  if (auto r = vm->create_vcpus(kvm); !r) return tl::unexpected(host_error(r.error()));
  return vm;
}

Result<void> Vm::setup_platform() {
  TRY(install_kick_handler());
  // Memory slots go in before the irqchip: once an irqchip exists, KVM waits for an SRCU grace
  // period when installing the first slot, which measured 5-10 ms here (bench/startup_bench).
  uint32_t slot = 0;
  for (const auto& r : mem_.regions()) {
    kvm_userspace_memory_region region{};
    region.slot = slot++;
    region.guest_phys_addr = r.start.raw();
    region.memory_size = r.size;
    region.userspace_addr = reinterpret_cast<uint64_t>(r.host);
    TRY(vm_.set_user_memory_region(region));
  }
  // KVM needs these pages (VMX real-mode TSS and identity map) outside guest RAM, before vCPUs exist.
  TRY(vm_.set_tss_addr(layout::kKvmTss));
  TRY(vm_.set_identity_map_addr(layout::kKvmIdentityMap));
  TRY(vm_.create_irqchip());
  TRY(vm_.create_pit2(KVM_PIT_SPEAKER_DUMMY));
  routing_ = TRY(IrqRoutingTable::for_vm(vm_));
  TRY(routing_->install());

  ioevents_ = std::make_unique<IoEventRegistry>(&vm_);
  out_ = std::make_unique<ConsoleOutput>(TRY(ConsoleOutput::open(cfg_.serial)));
  devices_ = TRY(Devices::create(vm_, mem_, pio_, mmio_, *ioevents_, *this, *out_, cfg_, &notifier_));
  devices_->pm().set_sleep_handler([this](uint8_t slp_typ) { on_sleep(slp_typ); });
  // An RTC alarm wakes the VM from S3 when the guest enabled it as a wake source (PM1_EN.RTC_EN);
  // outside S3 it is an interrupt like any other (IRQ8 through a notifying line).
  devices_->set_rtc_alarm_handler([this] {
    if (s3_.load() && (devices_->pm().enables() & AcpiPm::kRtcSts)) wake();
  });
  auto pv = std::make_shared<PvControl>([this](uint32_t vcpu) {
    if (vcpu < vcpus_.size())
      discard_error(vcpus_[vcpu]->set_mp_state(MpState::Suspended), discarded_errors_, "pv-control: suspending vCPU {}", vcpu);
  });
  TRY(pio_.insert(platform::kPvControlPort, PvControl::kRangeLen, pv, "pv-control"));
  return {};
}

Result<void> Vm::load_guest() {
  const uint64_t limit = mem_.ram_bytes();
  auto image = TRY(read_file(cfg_.kernel, limit, "kernel"));
  std::vector<uint8_t> initrd;
  BootConfig boot{image, cfg_.cmdline, {}, cfg_.cpus};
  if (!cfg_.initrd.empty()) {
    initrd = TRY(read_file(cfg_.initrd, limit, "initrd"));
    boot.modules.push_back({initrd, cfg_.initrd});
  }
  auto entry = TRY_CTX(load_image(mem_, boot), cfg_.kernel);
  TRY(write_firmware_tables(mem_, cfg_.cpus));
  TRY(write_boot_tables(mem_, entry.mode));
  entry_ = entry;
  LOG_INFO("{}: {} image, entry {:#x}", cfg_.kernel, to_string(entry.format), entry.rip);
  return {};
}

Result<void> Vm::create_vcpus(const System& kvm) {
  auto cpuid = TRY(kvm.supported_cpuid());
  auto exit_fds = TRY(ExitFdWatcher::create());
  std::vector<VcpuFd> fds;
  fds.reserve(cfg_.cpus);
  for (unsigned id = 0; id < cfg_.cpus; ++id) {
    auto fd = TRY(vm_.create_vcpu(id));
    if (cfg_.xen) {
      CpuidTable table = cpuid;
      add_xen_cpuid_leaves(table, cfg_.xen->cpuid, id);
      TRY(configure_vcpu(fd, table, id, cfg_.cpus));
    } else {
      TRY(configure_vcpu(fd, cpuid, id, cfg_.cpus));
    }
    // The BSP starts at the image's entry; APs stay in wait-for-SIPI in the kernel's LAPIC.
    if (id == 0) TRY(set_entry_state(fd, entry_));
    fds.push_back(std::move(fd));
  }
  // A vCPU's hooks are fixed when it is built, so Xen, which owns some of them, comes first.
  if (cfg_.xen) TRY(setup_xen(fds.front()));
  gate_ = std::make_unique<PauseGate>(cfg_.cpus);
  for (unsigned id = 0; id < cfg_.cpus; ++id) {
    VcpuHooks hooks;
    hooks.io_events = ioevents_.get();
    hooks.irq_notifier = &notifier_;
    hooks.pause_gate = gate_.get();
    hooks.wake = [this](Vcpu& v, const exit::Wakeup& w) { return on_wakeup(v, w); };
    if (xen_) xen_->add_vcpu_hooks(hooks);
    vcpus_.push_back(std::make_unique<Vcpu>(id, std::move(fds[id]), mem_, pio_, mmio_, stop_, exit_fds, std::move(hooks)));
  }
  return {};
}

Result<void> Vm::setup_xen(const VcpuFd& bsp) {
  XenHvm::Env env{
      .vm = &vm_,
      .mem = &mem_,
      .vcpus = cfg_.cpus,
      .tsc_khz = TRY(bsp.get_tsc_khz()),
      .console = [out = out_.get()](std::span<const uint8_t> b) { out->write(b); },
      .control = this,
      .notifier = &notifier_,
      .vcpu = [this](uint32_t index) { return index < vcpus_.size() ? vcpus_[index].get() : nullptr; },
  };
  xen_ = TRY(XenHvm::create(std::move(env), *cfg_.xen));
  TRY(xen_->install(pio_));
  TRY(devices_->event_loop().add(xen_->timers()));
  // Xen system time starts now; the guest TSC is read on the BSP, whose clock the others share.
  constexpr uint32_t kTsc = 0x10;
  timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  auto tsc = TRY(bsp.get_msrs(std::span<const uint32_t>(&kTsc, 1)));
  xen_->set_time_reference(tsc.front(), uint64_t(ts.tv_sec) * 1'000'000'000u + uint64_t(ts.tv_nsec));
  LOG_INFO("Xen {}.{} HVM: CPUID leaves at {:#x}, hypercall MSR {:#x}, domid {}", cfg_.xen->cpuid.major,
           cfg_.xen->cpuid.minor, xen_cpuid_base(cfg_.xen->cpuid), cfg_.xen->cpuid.hypercall_msr, cfg_.xen->cpuid.domid);
  return {};
}

Result<void> Vm::start() {
  if (!threads_.empty()) return make_error(EBUSY, "VM already started");
  // Threads inherit the mask: only vCPU threads take the kick signal.
  block_kick_signal();
  int input = cfg_.serial.kind == SerialConfig::Kind::Stdio ? STDIN_FILENO : cfg_.serial.input_fd;
  if (input >= 0) in_ = TRY(devices_->attach_console_input(input));
  for (auto& v : vcpus_) {
    threads_.emplace_back([this, vcpu = v.get(), sandbox = cfg_.seccomp && seccomp::supported()] {
      if (sandbox) {
        if (auto r = seccomp::install(seccomp::Role::Vcpu); !r)
          return finish({VmOutcome::Kind::HostError, exit_status::kHost, r.error().message()});
      }
      unblock_kick_signal();
      VcpuStop s = vcpu->run();
      switch (s.kind) {
        case VcpuStopKind::Requested:
          break;
        case VcpuStopKind::TripleFault:
          finish({VmOutcome::Kind::TripleFault, exit_status::kGuestFault, s.message});
          break;
        case VcpuStopKind::GuestError:
          finish({VmOutcome::Kind::GuestError, exit_status::kGuestFault, s.message});
          break;
        case VcpuStopKind::VmmError:
          finish({VmOutcome::Kind::VmmError, exit_status::kVmmError, s.message});
          break;
      }
    });
  }
  return {};
}

void Vm::finish(VmOutcome outcome) {
  {
    std::lock_guard lock(outcome_mu_);
    if (outcome_) return;
    outcome_ = std::move(outcome);
  }
  stop_.store(true);
  for (auto& v : vcpus_) v->request_exit();
  discard_error(stopped_.signal(), discarded_errors_, "signalling the VM's stopped eventfd");
}

void Vm::request_stop(StopReason reason, int status) {
  switch (reason) {
    case StopReason::PowerOff:
      return finish({VmOutcome::Kind::PowerOff, exit_status::kPowerOff, {}});
    case StopReason::DebugExit:
      return finish({VmOutcome::Kind::DebugExit, status, fmt::format("guest debug-exit, status {}", status)});
    case StopReason::Reset:
      return finish({VmOutcome::Kind::Reset, exit_status::kReset, "guest requested a reset"});
    case StopReason::Crash:
      return finish({VmOutcome::Kind::Crash, exit_status::kGuestCrash, "guest reported a crash"});
    case StopReason::Suspend:
      return finish({VmOutcome::Kind::Suspended, exit_status::kSuspended, "guest asked to be suspended"});
  }
}

Result<void> Vm::pause(std::chrono::milliseconds timeout) {
  std::lock_guard lock(pause_mu_);
  if (paused_clock_) return make_error(EBUSY, "the VM is already paused");
  if (threads_.empty() || stop_.load()) return make_error(EBUSY, "the VM is not running");
  gate_->close();
  for (auto& v : vcpus_) v->request_exit();
  if (!gate_->wait_parked(timeout)) {
    gate_->open();
    return make_error(ETIMEDOUT, "a vCPU did not pause within {} ms", timeout.count());
  }
  auto clock = vm_.get_clock();
  if (!clock) {
    gate_->open();
    return tl::unexpected(clock.error());
  }
  paused_clock_ = *clock;
  return {};
}

Result<void> Vm::resume() {
  std::lock_guard lock(pause_mu_);
  if (!paused_clock_) return make_error(EINVAL, "the VM is not paused");
  // KVM_SET_CLOCK takes only the clock value (and, with KVM_CLOCK_REALTIME, a realtime stamp we do
  // not pass): the guest's kvmclock continues from where it paused.
  kvm_clock_data c{};
  c.clock = paused_clock_->clock;
  auto r = vm_.set_clock(c);
  paused_clock_.reset();
  gate_->open();
  return r;
}

bool Vm::paused() const {
  std::lock_guard lock(pause_mu_);
  return paused_clock_.has_value();
}

void Vm::wake() {
  if (s3_.load()) {
    s3_wake_.store(true);
    vcpus_.front()->wake();
    return;
  }
  for (auto& v : vcpus_)
    if (v->suspended()) v->wake();
}

void Vm::on_sleep(uint8_t slp_typ) {
  if (slp_typ != 1) {
    LOG_WARN("guest asked for sleep type {}, which the DSDT does not declare; ignored", slp_typ);
    return;
  }
  switch (cfg_.on_suspend) {
    case OnSuspend::Ignore:
      LOG_INFO("guest asked for S3; --on-suspend=ignore");
      return;
    case OnSuspend::Exit:
      return finish({VmOutcome::Kind::Suspended, exit_status::kSuspended, "guest suspended to ACPI S3"});
    case OnSuspend::Suspend:
      break;
  }
  LOG_INFO("guest entered ACPI S3: every vCPU suspended until a wake event");
  s3_wake_.store(false);
  s3_.store(true);
  for (auto& v : vcpus_)
    discard_error(v->set_mp_state(MpState::Suspended), discarded_errors_, "S3: suspending vCPU {}", v->id());
}

WakeDecision Vm::on_wakeup(Vcpu& vcpu, const exit::Wakeup& w) {
  if (!s3_.load()) return user_wake_handler_ ? user_wake_handler_(vcpu, w) : WakeDecision::Resume;
  // In S3 only the platform wakes the machine: interrupts stay pending and suppressed (sticky).
  if (vcpu.id() != 0 || !s3_wake_.exchange(false)) return WakeDecision::StaySuspended;
  if (auto r = resume_from_s3(vcpu); !r) {
    finish({VmOutcome::Kind::GuestError, exit_status::kGuestFault, fmt::format("S3 resume: {}", r.error().message())});
    return WakeDecision::StaySuspended;
  }
  return WakeDecision::Resume;
}

Result<void> Vm::resume_from_s3(Vcpu& bsp) {
  // As firmware does (ACPI 6.0, 7.4.2 and 16.3): the waking vector, in real mode, with CS = vector
  // >> 4 and IP = vector & 0xF. The APs wait for the guest's INIT/SIPI, as after a reset.
  uint64_t facs = TRY(boot::find_facs(mem_));
  uint32_t vector = TRY(mem_.read_obj<uint32_t>(GuestAddress(facs + boot::kFacsWakingVectorOffset)));
  if (vector == 0 || vector >= 0x100000)
    return make_error(EINVAL, "the FACS waking vector {:#x} is not a real-mode address", vector);
  TRY(set_real_mode_state(bsp.fd(), static_cast<uint16_t>(vector >> 4), static_cast<uint16_t>(vector & 0xf)));
  for (auto& v : vcpus_) {
    if (v.get() == &bsp) continue;
    // The AP's thread is in its suspended wait, not in KVM_RUN, so its vCPU ioctls do not block.
    TRY(set_init_registers(v->fd()));
    TRY(v->set_mp_state(MpState::Stopped));
    v->wake();  // ends its wait; the Wakeup finds it runnable already
  }
  devices_->pm().raise_status(AcpiPm::kWakSts);
  s3_.store(false);
  LOG_INFO("guest woke from ACPI S3 at waking vector {:#x}", vector);
  return {};
}

void Vm::interrupt(std::string why) { finish({VmOutcome::Kind::Interrupted, exit_status::kInterrupted, std::move(why)}); }

VmOutcome Vm::wait() {
  for (auto& t : threads_) t.join();
  threads_.clear();
  if (in_) {
    devices_->serial().set_rx_space_callback(nullptr);
    discarded_errors_ += in_->discarded_errors();  // the input's counts join the VM's as it goes
    in_.reset();
  }
  std::lock_guard lock(outcome_mu_);
  return outcome_.value_or(VmOutcome{VmOutcome::Kind::VmmError, exit_status::kVmmError, "VM stopped without a reason"});
}

VmStats Vm::stats() const {
  VmStats s;
  for (auto& v : vcpus_) {
    s.pio_exits += v->stats().pio_exits.load();
    s.mmio_exits += v->stats().mmio_exits.load();
    s.discarded_errors += v->stats().discarded_errors.load();
    for (size_t i = 0; i < s.assists.size(); ++i) s.assists[i] += v->stats().assists[i].load();
  }
  s.unclaimed_pio = pio_.stats().unclaimed_reads.load() + pio_.stats().unclaimed_writes.load();
  s.unclaimed_mmio = mmio_.stats().unclaimed_reads.load() + mmio_.stats().unclaimed_writes.load();
  s.discarded_errors += discarded_errors_.load();
  return s;
}

}  // namespace evmm
