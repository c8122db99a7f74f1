// Suspend and pause latencies (issue 4), on in-process VMs running the testprog guest:
//  - wake latency: the guest suspends itself N times (`pvsuspend n=N ack=PORT`). Each round the bench
//    waits until the vCPU thread is asleep, takes the time, sends one wakeup event, and takes the time
//    again when the guest's first write after resuming reaches an ioeventfd on PORT (caught by KVM, so
//    no userspace exit is counted twice). Sources: an API wake (Vm::wake), a device interrupt through
//    an irqfd (announced as the platform's lines announce theirs), and a byte of serial input (the
//    event loop feeds COM1, whose IRQ4 goes through the IOAPIC).
//  - pause/resume latency on 2 vCPUs, the BSP busy with platform doorbell round trips and the AP
//    halted in KVM: how long Vm::pause() takes to get every vCPU out and quiescent, and Vm::resume().
//
//   evmm_suspend_bench [n]     n rounds per case (default 200, at most 5000)
#include <poll.h>
#include <unistd.h>

#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <functional>
#include <string>
#include <thread>
#include <vector>

#include <fmt/format.h>

#include "bench/stats.h"
#include "kvm/system.h"
#include "tests/suspend_harness.h"
#include "vmm/vm.h"

using namespace evmm;
using namespace std::chrono_literals;
using Clock = std::chrono::steady_clock;

namespace {

constexpr uint16_t kAckPort = 0x6fc;

uint64_t ns_between(Clock::time_point a, Clock::time_point b) {
  return uint64_t(std::chrono::duration_cast<std::chrono::nanoseconds>(b - a).count());
}

struct WakeCase {
  const char* name;
  std::function<void(suspend::Guest&)> fire;
  std::vector<uint64_t> ns;
  std::string error;
};

void run_wake(const std::string& image, unsigned n, WakeCase& c) {
  suspend::Guest w;
  if (auto e = w.boot(image, {.cmdline = fmt::format("pvsuspend n={} ack={} exit=0", n, kAckPort),
                              .serial_input = true,
                              .ack_port = kAckPort});
      !e.empty()) {
    c.error = "boot: " + e;
    return;
  }
  Vcpu& v = w.vm->vcpu(0);
  for (unsigned i = 0; i < n; ++i) {
    if (!suspend::wait_for([&] { return v.suspended(); }, 10s, 50us)) {
      c.error = fmt::format("round {}: the guest never suspended", i + 1);
      break;
    }
    // Past the wait's settle rechecks (0.1, 1, 10 ms): the thread sleeps until it is told.
    std::this_thread::sleep_for(12ms);
    auto t0 = Clock::now();
    c.fire(w);
    pollfd p{w.ack->fd(), POLLIN, 0};
    if (::poll(&p, 1, 10'000) != 1) {
      c.error = fmt::format("round {}: no ack from the guest within 10 s", i + 1);
      break;
    }
    auto t1 = Clock::now();
    (void)w.ack->consume();
    c.ns.push_back(ns_between(t0, t1));
  }
  if (!c.error.empty()) {
    w.vm->interrupt(c.error);
    w.vm->wait();
    return;
  }
  VmOutcome out;
  std::string serial = w.finish(&out);
  if (out.exit_status != 1) c.error = fmt::format("guest ended with status {}: {}", out.exit_status, out.message);
  if (v.stats().wakeups_resumed.load() != n)
    c.error = fmt::format("{} wakeups resumed, expected {}", v.stats().wakeups_resumed.load(), n);
  if (c.error.empty() && serial.find("pvsuspend: resumed") == std::string::npos)
    c.error = "the guest did not report";
}

struct PauseResult {
  std::vector<uint64_t> pause_ns, resume_ns;
  std::string error;
};

PauseResult run_pause(const std::string& image, unsigned n) {
  PauseResult r;
  auto kvm = System::open();
  if (!kvm) return {{}, {}, kvm.error().message()};
  VmConfig cfg;
  cfg.kernel = image;
  cfg.cmdline = "smp doorbell=pio n=2000 exit=0";
  cfg.cpus = 2;
  cfg.memory_mib = 64;
  cfg.serial = SerialConfig{SerialConfig::Kind::None, {}};
  auto vm = Vm::create(*kvm, cfg);
  if (!vm) return {{}, {}, vm.error().message};
  if (auto s = (*vm)->start(); !s) return {{}, {}, s.error().message()};
  std::this_thread::sleep_for(50ms);  // both vCPUs up
  for (unsigned i = 0; i < n; ++i) {
    auto t0 = Clock::now();
    auto p = (*vm)->pause();
    auto t1 = Clock::now();
    if (!p) {
      // The guest may have finished its round trips; fewer rounds are still a measurement.
      if (r.pause_ns.empty()) r.error = "pause: " + p.error().message();
      break;
    }
    auto s = (*vm)->resume();
    auto t2 = Clock::now();
    if (!s) {
      r.error = "resume: " + s.error().message();
      break;
    }
    r.pause_ns.push_back(ns_between(t0, t1));
    r.resume_ns.push_back(ns_between(t1, t2));
    std::this_thread::sleep_for(1ms);  // let the guest run between pauses
  }
  (*vm)->interrupt("benchmark done");
  (*vm)->wait();
  return r;
}

}  // namespace

int main(int argc, char** argv) {
  unsigned n = argc > 1 ? std::atoi(argv[1]) : 200;
  if (n == 0 || n > 5000) {
    std::fprintf(stderr, "usage: %s [n]  (1..5000 rounds per case)\n", argv[0]);
    return 2;
  }
  std::string image = std::string(EVMM_GUEST_DIR) + "/testprog.mb.elf";
  WakeCase cases[] = {
      {"api wake", [](suspend::Guest& w) { w.vm->wake(); }, {}, {}},
      {"irqfd interrupt", [](suspend::Guest& w) { w.raise(); }, {}, {}},
      {"serial input", [](suspend::Guest& w) { (void)!::write(w.serial_in.get(), "x", 1); }, {}, {}},
  };
  bool ok = true;
  for (auto& c : cases) {
    run_wake(image, n, c);
    if (!c.error.empty()) {
      fmt::print("{:<16} FAILED: {}\n", c.name, c.error);
      ok = false;
    }
  }
  PauseResult p = run_pause(image, n);
  if (!p.error.empty()) {
    fmt::print("pause FAILED: {}\n", p.error);
    ok = false;
  }
  if (!ok) return 1;

  fmt::print("wake latency: event -> the resumed guest's first write (ioeventfd), {} rounds per source, µs\n", n);
  fmt::print("{:<16} {:>9} {:>9}\n", "source", "p50", "p99");
  for (auto& c : cases) {
    auto s = bench::percentiles(c.ns);
    fmt::print("{:<16} {:>9.1f} {:>9.1f}\n", c.name, s.p50, s.p99);
  }
  auto ps = bench::percentiles(p.pause_ns), rs = bench::percentiles(p.resume_ns);
  fmt::print("\nVM pause/resume, 2 vCPUs (BSP ringing doorbells, AP halted in KVM), {} rounds, µs\n",
             p.pause_ns.size());
  fmt::print("{:<16} {:>9} {:>9}\n", "step", "p50", "p99");
  fmt::print("{:<16} {:>9.1f} {:>9.1f}\n", "pause", ps.p50, ps.p99);
  fmt::print("{:<16} {:>9.1f} {:>9.1f}\n", "resume", rs.p50, rs.p99);
  return 0;
}
