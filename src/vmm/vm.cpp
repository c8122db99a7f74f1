#include "vmm/vm.h"

#include "base/discard.h"
#include "base/log.h"
#include "devices/serial.h"
#include "sandbox/seccomp.h"
#include "vcpu/kick.h"
#include "vmm/console.h"
#include "vmm/exit_status.h"
#include "vmm/platform_devices.h"
#include "vmm/sleep_policy.h"
#include "vmm/virtio_devices.h"
#include "vmm/vm_builder.h"

namespace evmm {

Vm::Vm(VmConfig cfg, VmFd vm, GuestMemory mem, EventFd stopped)
    : cfg_(std::move(cfg)), vm_(std::move(vm)), mem_(std::move(mem)), stopped_(std::move(stopped)) {}

Vm::~Vm() {
  if (!threads_.empty()) {
    interrupt("VM destroyed while running");
    wait();
  }
}

Result<void> Vm::start() {
  if (!threads_.empty()) return make_error(EBUSY, "VM already started");
  // Threads inherit the mask: only vCPU threads take the kick signal.
  block_kick_signal();
  int input = cfg_.serial.kind == SerialConfig::Kind::Stdio ? STDIN_FILENO : cfg_.serial.input_fd;
  // --console virtio: the keyboard goes to hvc0 instead of COM1.
  if (input >= 0 && virtio_->has_console()) TRY(virtio_->attach_console_input(input));
  else if (input >= 0) in_ = TRY(devices_->attach_console_input(input));
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
          finish({VmOutcome::Kind::TripleFault, exit_status::kGuestFault, s.message, s.dump});
          break;
        case VcpuStopKind::GuestError:
          finish({VmOutcome::Kind::GuestError, exit_status::kGuestFault, s.message, s.dump});
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
  // A vCPU parked for the debugger must leave to stop.
  if (debugger_) debugger_->release();
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

tl::expected<std::unique_ptr<Vm>, VmOutcome> Vm::create(const System& kvm, const VmConfig& cfg) {
  return VmBuilder::build(kvm, cfg);
}

void Vm::wake() { sleep_->wake(); }

std::string Vm::dump_vcpus(std::chrono::milliseconds timeout) {
  std::string out;
  for (auto& v : vcpus_) {
    auto d = v->dump_registers(timeout);
    out += d ? *d : fmt::format("  vCPU {}: {}\n", v->id(), d.error().message());
  }
  return out;
}

std::optional<int> Vm::exit_status() {
  std::lock_guard lock(outcome_mu_);
  if (!outcome_) return std::nullopt;
  return outcome_->exit_status;
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
    for (size_t i = 0; i < s.faults.size(); ++i) s.faults[i] += v->stats().faults[i].load();
  }
  s.unclaimed_pio = pio_.stats().unclaimed_reads.load() + pio_.stats().unclaimed_writes.load();
  s.unclaimed_mmio = mmio_.stats().unclaimed_reads.load() + mmio_.stats().unclaimed_writes.load();
  s.discarded_errors += discarded_errors_.load() + (sleep_ ? sleep_->discarded_errors() : 0) +
                        (xen_ ? xen_->stats().discarded_errors : 0);
  if (virtio_) s.virtio = virtio_->stats();
  return s;
}

}  // namespace evmm
