#include "vcpu/vcpu.h"

#include <cpuid.h>
#include <poll.h>
#include <signal.h>

#include <algorithm>
#include <cstring>
#include <utility>

#include <fmt/format.h>

#include "base/discard.h"
#include "base/log.h"
#include "vcpu/kick.h"
#include "vcpu/register_dump.h"

namespace evmm {

namespace {

// What an assist may consult, backed by the real vCPU.
class VcpuAssistEnv final : public AssistEnv {
 public:
  VcpuAssistEnv(const VcpuFd& fd, const GuestMemory& mem) : fd_(fd), mem_(mem) {}
  const GuestMemory& memory() override { return mem_; }
  // KVM passes the host's MAXPHYADDR through to the guest's CPUID here. Asked once per
  // emulation: CPUID exits to the hypervisor on a nested host.
  unsigned physical_address_bits() override {
    if (phys_bits_ == 0) {
      unsigned eax = 0, ebx = 0, ecx = 0, edx = 0;
      phys_bits_ = __get_cpuid(0x80000008, &eax, &ebx, &ecx, &edx) ? (eax & 0xff) : 36;
    }
    return phys_bits_;
  }
  // Done after the registers are written back: see Vcpu::complete_emulation.
  Result<void> flush_tlb() override {
    flush_requested = true;
    return {};
  }
  bool flush_requested = false;
  Result<uint64_t> read_msr(uint32_t index) override {
    const uint32_t idx[] = {index};
    return TRY(fd_.get_msrs(idx))[0];
  }
  Result<std::vector<uint8_t>> read_fpu() override { return fd_.get_xsave(); }
  Result<void> write_fpu(std::span<const uint8_t> area) override { return fd_.set_xsave(area); }
  Result<uint64_t> read_xcr0() override {
    kvm_xcrs x = TRY(fd_.get_xcrs());
    for (uint32_t i = 0; i < x.nr_xcrs && i < KVM_MAX_XCRS; ++i)
      if (x.xcrs[i].xcr == 0) return x.xcrs[i].value;
    return make_error(EIO, "KVM_GET_XCRS did not report XCR0");
  }
  Result<void> write_xcr0(uint64_t value) override {
    kvm_xcrs x{};
    x.nr_xcrs = 1;
    x.xcrs[0] = {0, 0, value};
    return fd_.set_xcrs(x);
  }

 private:
  const VcpuFd& fd_;
  const GuestMemory& mem_;
  unsigned phys_bits_ = 0;
};

template <class... Ts>
struct Overloaded : Ts... {
  using Ts::operator()...;
};
// C++20 deduces this for aggregates, but clang 14 does not implement that yet.
template <class... Ts>
Overloaded(Ts...) -> Overloaded<Ts...>;

}  // namespace

Result<void> Vcpu::bind_thread() { return requests_.attach(fd_.run_struct()); }

void Vcpu::unbind_thread() { requests_.detach(); }

Result<ExitFd> Vcpu::make_exit_fd() {
  if (!exit_fds_) return make_error(ENOTSUP, "vCPU {}: no exit fd watcher", id_);
  return exit_fds_->add(requests_);
}

template <class Enter>
Result<RunStep> Vcpu::counted_step(Enter&& enter) {
  auto step = requests_.step(std::forward<Enter>(enter));
  if (step) {
    stats_.runs.fetch_add(1, std::memory_order_relaxed);
    stats_.requests_taken.fetch_add(step->requests, std::memory_order_relaxed);
  }
  return step;
}

Result<RunStep> Vcpu::run_once() {
  return counted_step([this]() -> Result<StepExit> {
    if (suspended()) return wait_suspended();
    return fd_.run().map([](VcpuExit e) { return to_step_exit(std::move(e)); });
  });
}

VcpuStop Vcpu::run() {
  if (auto r = bind_thread(); !r) return {VcpuStopKind::VmmError, fmt::format("vCPU {}: {}", id_, r.error().message())};
  stop_reason_ = {VcpuStopKind::Requested, {}};
  State state = next_state();
  while (state != State::Stopping) {
    switch (state) {
      case State::Running: state = running_step(); break;
      case State::Paused: state = paused_step(); break;
      case State::Suspended: state = suspended_step(); break;
      case State::Stopping: break;
    }
  }
  return stopping();
}

Vcpu::State Vcpu::next_state() const {
  if (stop_.load()) return State::Stopping;
  if (hooks_.pause_gate && hooks_.pause_gate->closed()) return State::Paused;
  if (hooks_.debug_gate && hooks_.debug_gate->closed()) return State::Paused;
  return suspended() ? State::Suspended : State::Running;
}

Vcpu::State Vcpu::running_step() { return finish_step(counted_step([this] { return fd_.run(); })); }

Vcpu::State Vcpu::paused_step() {
  // Returns at once if the gate opened meanwhile; the stop flag may have been set while parked.
  if (hooks_.pause_gate) hooks_.pause_gate->park_if_closed();
  if (hooks_.debug_gate) hooks_.debug_gate->park_if_closed();
  return next_state();
}

Vcpu::State Vcpu::suspended_step() { return finish_step(counted_step([this] { return wait_suspended(); })); }

VcpuStop Vcpu::stopping() {
  if (stop_reason_.kind == VcpuStopKind::TripleFault || stop_reason_.kind == VcpuStopKind::GuestError)
    stop_reason_.dump = register_dump_text();
  unbind_thread();
  if (hooks_.pause_gate) hooks_.pause_gate->leave();
  if (hooks_.debug_gate) hooks_.debug_gate->leave();
  return stop_reason_;
}

Vcpu::State Vcpu::finish_step(Result<RunStep> step) {
  if (!step) {
    stop_reason_ = {VcpuStopKind::VmmError, fmt::format("vCPU {}: {}", id_, step.error().message())};
    return State::Stopping;
  }
  if (!handle_exit(step->exit, &stop_reason_)) return State::Stopping;
  if (step->requests && dump_wanted_.exchange(false)) serve_dump();
  return next_state();
}

std::string Vcpu::register_dump_text() const {
  auto snap = snapshot_vcpu(fd_, mem_);
  if (!snap) return fmt::format("  vCPU {}: registers unreadable: {}\n", id_, snap.error().message());
  return format_register_dump(id_, *snap, suspended() ? "suspended" : "");
}

void Vcpu::serve_dump() {
  uint64_t seq;
  {
    std::lock_guard lock(dump_mu_);
    seq = dump_seq_;
  }
  std::string text = register_dump_text();
  std::lock_guard lock(dump_mu_);
  if (seq != dump_seq_) return;
  dump_reply_ = std::move(text);
  dump_cv_.notify_all();
}

Result<std::string> Vcpu::dump_registers(std::chrono::milliseconds timeout) {
  std::lock_guard call(dump_call_mu_);
  std::unique_lock lock(dump_mu_);
  dump_reply_.reset();
  ++dump_seq_;
  dump_wanted_.store(true);
  request_exit();
  if (!dump_cv_.wait_for(lock, timeout, [&] { return dump_reply_.has_value(); })) {
    dump_wanted_.store(false);
    return make_error(ETIMEDOUT, "vCPU {} did not take its register dump within {} ms (paused or not running)", id_,
                      timeout.count());
  }
  return std::exchange(*dump_reply_, {});
}

bool Vcpu::handle_exit(const StepExit& exit, VcpuStop* stop) {
  auto fail = [&](VcpuStopKind kind, std::string msg) {
    *stop = {kind, fmt::format("vCPU {}: {}", id_, msg)};
    return false;
  };
  return std::visit(
      Overloaded{
          [&](const exit::IoIn& io) {
            stats_.pio_exits.fetch_add(1, std::memory_order_relaxed);
            for (size_t off = 0; off + io.size <= io.data.size(); off += io.size)
              pio_.read(io.port, io.data.subspan(off, io.size), id_);
            return true;
          },
          [&](const exit::IoOut& io) {
            stats_.pio_exits.fetch_add(1, std::memory_order_relaxed);
            for (size_t off = 0; off + io.size <= io.data.size(); off += io.size) {
              auto d = io.data.subspan(off, io.size);
              if (!hooks_.io_events || !hooks_.io_events->dispatch_write(IoSpace::Pio, io.port, d)) pio_.write(io.port, d, id_);
            }
            return true;
          },
          [&](const exit::MmioRead& m) {
            stats_.mmio_exits.fetch_add(1, std::memory_order_relaxed);
            mmio_.read(m.addr, m.data, id_);
            return true;
          },
          [&](const exit::MmioWrite& m) {
            stats_.mmio_exits.fetch_add(1, std::memory_order_relaxed);
            if (!hooks_.io_events || !hooks_.io_events->dispatch_write(IoSpace::Mmio, m.addr, m.data)) mmio_.write(m.addr, m.data, id_);
            return true;
          },
          [&](const exit::Interrupted&) {
            stats_.interrupted.fetch_add(1, std::memory_order_relaxed);
            return true;
          },
          // The step ended early; the state machine now picks the next state.
          [&](const exit::Request&) {
            stats_.request_exits.fetch_add(1, std::memory_order_relaxed);
            return true;
          },
          [&](const exit::Wakeup& w) {
            settle_wakeup(w, hooks_.wake ? hooks_.wake(*this, w) : WakeDecision::Resume);
            return true;
          },
          // With the in-kernel LAPIC the kernel handles HLT; one that reaches us is resumed.
          [&](const exit::Hlt&) { return true; },
          [&](const exit::Shutdown&) { return fail(VcpuStopKind::TripleFault, "guest triple fault (KVM_EXIT_SHUTDOWN)"); },
          [&](const exit::SystemEvent& e) {
            return fail(VcpuStopKind::GuestError, fmt::format("KVM system event {}", e.type));
          },
          [&](const exit::FailEntry& f) {
            return fail(VcpuStopKind::GuestError,
                        fmt::format("KVM could not enter the guest (hardware reason {:#x})", f.reason));
          },
          [&](const exit::InternalError& e) {
            return fail(VcpuStopKind::GuestError, fmt::format("KVM internal error, suberror {}", e.suberror));
          },
          [&](const exit::EmulationFailure& e) { return complete_emulation(e.insn, stop); },
          [&](const exit::Msr& m) {
            stats_.msr_exits.fetch_add(1, std::memory_order_relaxed);
            uint64_t value = m.value;
            bool ok = hooks_.msr && hooks_.msr(*this, m.write, m.index, value);
            if (ok && !m.write) *m.result = value;
            *m.error = ok ? 0 : 1;  // #GP, as for an MSR the CPU does not have
            return true;
          },
          [&](const exit::XenHypercall& h) {
            if (!hooks_.hypercall)
              return fail(VcpuStopKind::VmmError, "a Xen hypercall exit, but no Xen emulation is attached");
            *h.result = hooks_.hypercall(*this, h);
            return true;
          },
          [&](const exit::Debug& d) {
            stats_.debug_exits.fetch_add(1, std::memory_order_relaxed);
            // Only KVM_SET_GUEST_DEBUG makes these, and only a debugger sets that.
            if (!hooks_.debug)
              return fail(VcpuStopKind::VmmError, fmt::format("a debug exit (vector {} at {:#x}) with no debugger attached",
                                                              d.exception, d.pc));
            hooks_.debug(*this, d);
            return true;
          },
          [&](const exit::Unknown& u) {
            return fail(VcpuStopKind::VmmError, fmt::format("unexpected KVM exit reason {}", u.reason));
          },
          [&](const exit::DirtyRingFull&) {
            // evmm's own VMs do not turn the dirty ring on; an embedder that does harvests it itself.
            return fail(VcpuStopKind::VmmError, "the dirty ring is full and this vCPU loop does not harvest it");
          },
      },
      exit);
}

Result<MpState> Vcpu::mp_state() const {
  if (suspended()) return MpState::Suspended;
  return mp_state_from_kvm(TRY(fd_.get_mp_state()).mp_state);
}

Result<void> Vcpu::set_mp_state(MpState s) {
  if (s == MpState::Suspended) {
    if (!wake_fd_) return make_error(ENOMEM, "vCPU {}: no wake eventfd, cannot suspend", id_);
    api_wake_.store(false);  // a wake from before the suspension is stale
    suspended_.store(true, std::memory_order_release);
    requests_.request();  // a vCPU inside KVM_RUN leaves it, and its next step waits
    return {};
  }
  TRY(fd_.set_mp_state(kvm_mp_state{TRY(mp_state_to_kvm(s))}));
  suspended_.store(false, std::memory_order_release);
  return {};
}

void Vcpu::wake() {
  api_wake_.store(true, std::memory_order_release);
  if (wake_fd_) discard_error(wake_fd_->signal(), stats_.discarded_errors, "vCPU {}: signalling its wake eventfd", id_);
}

void Vcpu::settle_wakeup(const exit::Wakeup& w, WakeDecision d) {
  stats_.wakeups.fetch_add(1, std::memory_order_relaxed);
  if (d == WakeDecision::Resume) {
    stats_.wakeups_resumed.fetch_add(1, std::memory_order_relaxed);
    suppressed_vectors_ = {};
    suppressed_nmi_ = false;
    suspended_.store(false, std::memory_order_release);
    return;
  }
  for (size_t i = 0; i < w.vectors.size(); ++i) suppressed_vectors_[i] |= w.vectors[i];
  if (w.reasons & wake::kNmi) suppressed_nmi_ = true;
}

Result<exit::Wakeup> Vcpu::check_wakeup() {
  exit::Wakeup w{0, {}};
  if (api_wake_.exchange(false, std::memory_order_acq_rel)) w.reasons |= wake::kApi;
  // The IRR is 8 32-bit registers 16 bytes apart from APIC offset 0x200 (SDM vol. 3 s11.8.4).
  kvm_lapic_state lapic = TRY(fd_.get_lapic());
  for (size_t i = 0; i < w.vectors.size(); ++i) {
    uint32_t irr;
    std::memcpy(&irr, lapic.regs + 0x200 + 16 * i, sizeof irr);
    w.vectors[i] = irr & ~suppressed_vectors_[i];
    if (w.vectors[i]) w.reasons |= wake::kInterrupt;
  }
  kvm_vcpu_events ev = TRY(fd_.get_vcpu_events());
  if (ev.nmi.pending && !suppressed_nmi_) w.reasons |= wake::kNmi;
  return w;
}

Result<Vcpu::SleepEnd> Vcpu::sleep_once(int fd, const timespec* timeout, const std::function<Result<bool>()>& done) {
  sigset_t kick, old;
  sigemptyset(&kick);
  sigaddset(&kick, kick_signal());
  // The kick signal is blocked from the immediate_exit check until ppoll unblocks it atomically: a
  // kick that lands before the check is seen by it, one that lands after interrupts ppoll.
  pthread_sigmask(SIG_BLOCK, &kick, &old);
  struct Restore {
    const sigset_t* old;
    ~Restore() { pthread_sigmask(SIG_SETMASK, old, nullptr); }
  } restore{&old};
  if (__atomic_load_n(&fd_.run_struct()->immediate_exit, __ATOMIC_RELAXED)) return SleepEnd::Kicked;
  if (TRY(done())) return SleepEnd::Done;
  pollfd p{fd, POLLIN, 0};
  int r = ::ppoll(&p, 1, timeout, &old);
  if (r < 0 && errno == EINTR) return SleepEnd::Kicked;
  if (r < 0) return errno_error("vCPU {}: ppoll", id_);
  return r > 0 ? SleepEnd::Readable : SleepEnd::TimedOut;
}

Result<StepExit> Vcpu::wait_suspended() {
  // Registered for the whole wait: an interrupt raised from now on signals wake_fd_.
  struct Registration {
    InterruptAnnouncer* n;
    const EventFd* fd;
    Registration(InterruptAnnouncer* n, const EventFd* fd) : n(n), fd(fd) { if (n) n->add_waiter(fd); }
    ~Registration() { if (n) n->remove_waiter(fd); }
  } reg(hooks_.announcer, &*wake_fd_);
  // KVM injects irqfd writes from a workqueue and says nothing when it is done, so an interrupt
  // announced a moment ago may not be in the IRR yet; under load the injection took over 10 ms here
  // (1 in 10 demo VMs, 25 at once on 2 cores, missed its RTC alarm and stayed suspended). So after
  // entering and after each notification, look again with backoff, from 0.1 ms doubling to once a
  // second, for as long as the vCPU stays suspended: at most one KVM_GET_LAPIC a second, and no
  // injection however late goes unseen.
  static constexpr int64_t kFirstRecheckNs = 100'000, kMaxRecheckNs = 1'000'000'000;
  int64_t recheck = kFirstRecheckNs;
  for (;;) {
    exit::Wakeup w{0, {}};
    timespec ts{static_cast<time_t>(recheck / kMaxRecheckNs), static_cast<long>(recheck % kMaxRecheckNs)};
    auto end = TRY(sleep_once(wake_fd_->fd(), &ts, [&]() -> Result<bool> {
      w = TRY(check_wakeup());
      if (w.reasons) return true;
      stats_.suspend_sleeps.fetch_add(1, std::memory_order_relaxed);
      return false;
    }));
    switch (end) {
      case SleepEnd::Done: return w;
      case SleepEnd::Kicked: return exit::Interrupted{};
      case SleepEnd::Readable:
        discard_error(wake_fd_->consume(), stats_.discarded_errors, "vCPU {}: reading its wake eventfd", id_);
        recheck = kFirstRecheckNs;
        break;
      case SleepEnd::TimedOut:
        recheck = std::min(recheck * 2, kMaxRecheckNs);
        break;
    }
  }
}

bool Vcpu::complete_emulation(std::span<const uint8_t> insn, VcpuStop* stop) {
  auto regs = fd_.get_regs();
  auto sregs = fd_.get_sregs();
  if (!regs || !sregs) {
    *stop = {VcpuStopKind::VmmError, fmt::format("vCPU {}: reading registers after an emulation failure", id_)};
    return false;
  }
  CpuState cpu{*regs, *sregs};
  VcpuAssistEnv env(fd_, mem_);
  auto done = complete_instruction(insn, cpu, env);
  if (!done && done.error().fault()) return inject_fault(*done.error().fault(), done.error().context(), stop);
  if (!done) {
    // The assist's own message names the bytes when it could not decode them; otherwise add them.
    std::string why = done.error().context(), bytes = format_bytes(insn);
    if (why.find(bytes) == std::string::npos) why += fmt::format(" (instruction bytes {})", bytes);
    *stop = {VcpuStopKind::GuestError, fmt::format("vCPU {}: cannot emulate the instruction at {:#x}:{:#x}: {}", id_,
                                                   sregs->cs.selector, regs->rip, why)};
    return false;
  }
  auto wrote = fd_.set_sregs(cpu.sregs).and_then([&] { return fd_.set_regs(cpu.regs); });
  if (wrote && env.flush_requested) {
    // KVM has no ioctl that flushes a vCPU's TLB. KVM_SET_SREGS with a CR4 other than the vCPU's
    // sets mmu_reset_needed in __set_sregs_common, whose kvm_mmu_reset_context unloads the MMU
    // roots; kvm_mmu_load then flushes the current TLB context before the next entry. So toggle
    // CR4.PGE and put it back: two resets, the vCPU's state unchanged.
    kvm_sregs toggled = cpu.sregs;
    toggled.cr4 ^= 1ull << 7;
    wrote = fd_.set_sregs(toggled).and_then([&] { return fd_.set_sregs(cpu.sregs); });
  }
  if (!wrote) {
    *stop = {VcpuStopKind::VmmError, fmt::format("vCPU {}: {}", id_, wrote.error().message())};
    return false;
  }
  stats_.assists[static_cast<size_t>(*done)].fetch_add(1, std::memory_order_relaxed);
  LOG_DEBUG("vCPU {}: completed {} at {:#x}", id_, to_string(*done), regs->rip);
  return true;
}

// The registers stay as KVM left them, at the faulting instruction; KVM delivers the exception
// through the IDT on the next KVM_RUN, and turns a fault during that delivery into #DF or a
// shutdown as the CPU would (SDM vol. 3 6.15, interrupt 8).
bool Vcpu::inject_fault(const x86::Fault& f, std::string_view why, VcpuStop* stop) {
  auto events = fd_.get_vcpu_events();
  if (events) {
    // Injected rather than pending: the instruction's own checks already ran (KVM API, kvm_vcpu_events).
    events->exception.injected = 1;
    events->exception.pending = 0;
    events->exception.nr = static_cast<uint8_t>(f.vector);
    events->exception.has_error_code = f.error_code.has_value();
    events->exception.error_code = f.error_code.value_or(0);
    events->flags = 0;  // leave NMI, SIPI, SMM and the payload state as they are
  }
  // Without KVM_CAP_EXCEPTION_PAYLOAD a #PF's address goes into CR2 before the injection.
  auto set = events.and_then([&](const kvm_vcpu_events&) -> Result<void> {
    if (!f.cr2) return {};
    kvm_sregs s = TRY(fd_.get_sregs());
    s.cr2 = *f.cr2;
    return fd_.set_sregs(s);
  });
  set = set.and_then([&] { return fd_.set_vcpu_events(*events); });
  if (!set) {
    *stop = {VcpuStopKind::VmmError, fmt::format("vCPU {}: injecting #{}: {}", id_, x86::to_string(f.vector),
                                                 set.error().message())};
    return false;
  }
  stats_.faults[static_cast<size_t>(f.vector)].fetch_add(1, std::memory_order_relaxed);
  LOG_DEBUG("vCPU {}: injected #{}: {}", id_, x86::to_string(f.vector), why);
  return true;
}

}  // namespace evmm
