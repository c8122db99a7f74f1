#include "vcpu/vcpu.h"

#include <fmt/format.h>

#include "base/log.h"

namespace evmm {

namespace {

// What an assist may consult, backed by the real vCPU.
class VcpuAssistEnv final : public AssistEnv {
 public:
  VcpuAssistEnv(const VcpuFd& fd, const GuestMemory& mem) : fd_(fd), mem_(mem) {}
  Result<uint64_t> translate(uint64_t gva) override {
    kvm_translation t = TRY(fd_.translate(gva));
    if (!t.valid) return make_error(EFAULT, "guest virtual address {:#x} is not mapped", gva);
    return t.physical_address;
  }
  const GuestMemory& memory() override { return mem_; }
  Result<uint64_t> read_msr(uint32_t index) override {
    const uint32_t idx[] = {index};
    return TRY(fd_.get_msrs(idx))[0];
  }

 private:
  const VcpuFd& fd_;
  const GuestMemory& mem_;
};

template <class... Ts>
struct Overloaded : Ts... {
  using Ts::operator()...;
};
// C++20 deduces this for aggregates, but clang 14 does not implement that yet.
template <class... Ts>
Overloaded(Ts...) -> Overloaded<Ts...>;

}  // namespace

Result<ExitFd> Vcpu::make_exit_fd() {
  if (!exit_fds_) return make_error(ENOTSUP, "vCPU {}: no exit fd watcher", id_);
  return exit_fds_->add(requests_);
}

Result<RunStep> Vcpu::run_once() {
  auto step = requests_.step([this] { return fd_.run(); });
  if (step) {
    stats_.runs.fetch_add(1, std::memory_order_relaxed);
    stats_.requests_taken.fetch_add(step->requests, std::memory_order_relaxed);
  }
  return step;
}

VcpuStop Vcpu::run() {
  if (auto r = bind_thread(); !r) return {VcpuStopKind::VmmError, fmt::format("vCPU {}: {}", id_, r.error().message())};
  VcpuStop stop{VcpuStopKind::Requested, {}};
  while (!stop_.load()) {
    auto step = run_once();
    if (!step) {
      stop = {VcpuStopKind::VmmError, fmt::format("vCPU {}: {}", id_, step.error().message())};
      break;
    }
    if (!handle_exit(step->exit, &stop)) break;
  }
  unbind_thread();
  return stop;
}

bool Vcpu::handle_exit(const VcpuExit& exit, VcpuStop* stop) {
  auto fail = [&](VcpuStopKind kind, std::string msg) {
    *stop = {kind, fmt::format("vCPU {}: {}", id_, msg)};
    return false;
  };
  return std::visit(
      Overloaded{
          [&](const exit::IoIn& io) {
            stats_.pio_exits.fetch_add(1, std::memory_order_relaxed);
            for (size_t off = 0; off + io.size <= io.data.size(); off += io.size)
              pio_.read(io.port, io.data.subspan(off, io.size));
            return true;
          },
          [&](const exit::IoOut& io) {
            stats_.pio_exits.fetch_add(1, std::memory_order_relaxed);
            for (size_t off = 0; off + io.size <= io.data.size(); off += io.size) {
              auto d = io.data.subspan(off, io.size);
              if (!ioevents_ || !ioevents_->dispatch_write(IoSpace::Pio, io.port, d)) pio_.write(io.port, d);
            }
            return true;
          },
          [&](const exit::MmioRead& m) {
            stats_.mmio_exits.fetch_add(1, std::memory_order_relaxed);
            mmio_.read(m.addr, m.data);
            return true;
          },
          [&](const exit::MmioWrite& m) {
            stats_.mmio_exits.fetch_add(1, std::memory_order_relaxed);
            if (!ioevents_ || !ioevents_->dispatch_write(IoSpace::Mmio, m.addr, m.data)) mmio_.write(m.addr, m.data);
            return true;
          },
          [&](const exit::Interrupted&) {
            stats_.interrupted.fetch_add(1, std::memory_order_relaxed);
            return true;
          },
          // Back in the loop, which checks the stop flag (and, later, pause requests).
          [&](const exit::Request&) {
            stats_.request_exits.fetch_add(1, std::memory_order_relaxed);
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
          [&](const exit::Unknown& u) {
            return fail(VcpuStopKind::VmmError, fmt::format("unexpected KVM exit reason {}", u.reason));
          },
      },
      exit);
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
  if (!done) {
    // The assist's own message names the bytes when it could not decode them; otherwise add them.
    std::string why = done.error().context(), bytes = format_bytes(insn);
    if (why.find(bytes) == std::string::npos) why += fmt::format(" (instruction bytes {})", bytes);
    *stop = {VcpuStopKind::GuestError, fmt::format("vCPU {}: cannot emulate the instruction at {:#x}:{:#x}: {}", id_,
                                                   sregs->cs.selector, regs->rip, why)};
    return false;
  }
  auto wrote = fd_.set_sregs(cpu.sregs).and_then([&] { return fd_.set_regs(cpu.regs); });
  if (!wrote) {
    *stop = {VcpuStopKind::VmmError, fmt::format("vCPU {}: {}", id_, wrote.error().message())};
    return false;
  }
  stats_.assists[static_cast<size_t>(*done)].fetch_add(1, std::memory_order_relaxed);
  LOG_DEBUG("vCPU {}: completed {} at {:#x}", id_, to_string(*done), regs->rip);
  return true;
}

}  // namespace evmm
