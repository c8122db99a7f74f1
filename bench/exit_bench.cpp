// Exit request latency: from the request until KVM_RUN has returned in the vCPU thread, for
// Vcpu::request_exit(), for a write to an exit fd, and for the raw kick (pthread_kill of the kick
// signal, whose handler sets immediate_exit) on the same kind of VM. The three are interleaved in
// one run so that they share the host's conditions. Goal (the issue): request_exit() at most 1.1x raw.
// Usage: evmm_exit_bench [samples]   (default 3000 per method)
#include <pthread.h>
#include <time.h>

#include <algorithm>
#include <atomic>
#include <cstdio>
#include <cstdlib>
#include <memory>
#include <thread>
#include <vector>

#include <fmt/format.h>

#include "bench/stats.h"
#include "kvm/system.h"
#include "kvm/vm_fd.h"
#include "memory/layout.h"
#include "vcpu/cpu_setup.h"
#include "vcpu/kick.h"
#include "vcpu/vcpu.h"

namespace evmm {
namespace {

uint64_t now_ns() {
  timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return uint64_t(ts.tv_sec) * 1'000'000'000 + uint64_t(ts.tv_nsec);
}

void pause_us(long us) {
  timespec ts{0, us * 1000};
  nanosleep(&ts, nullptr);
}

// A VM with one vCPU spinning in real mode (jmp $ at 0x1000) and the in-kernel irqchip.
struct SpinVm {
  System kvm;
  VmFd vm;
  GuestMemory mem;
  IoBus pio{"pio"}, mmio{"mmio"};
  std::atomic<bool> stop{false};

  static Result<std::unique_ptr<SpinVm>> create() {
    System kvm = TRY(System::open());
    VmFd vm = TRY(kvm.create_vm());
    GuestMemory mem = TRY(GuestMemory::create({{GuestAddress(0), 0x10000}}));
    const uint8_t spin[] = {0xeb, 0xfe};
    TRY(mem.write(GuestAddress(0x1000), spin));
    TRY(vm.set_user_memory_region(mem.kvm_region(0)));
    TRY(vm.set_tss_addr(layout::kKvmTss));
    TRY(vm.set_identity_map_addr(layout::kKvmIdentityMap));
    TRY(vm.create_irqchip());
    return std::unique_ptr<SpinVm>(new SpinVm{std::move(kvm), std::move(vm), std::move(mem)});
  }
  Result<VcpuFd> vcpu() {
    VcpuFd fd = TRY(vm.create_vcpu(0));
    TRY(set_real_mode_state(fd, 0, 0x1000));
    return fd;
  }
};

// The vCPU side of one measured method. It enters the guest only when permitted, so that one vCPU
// at a time spins (the host has 2 cores), and publishes when each run returned.
struct Runner {
  std::atomic<uint64_t> returned_at{0};
  std::atomic<uint64_t> permit{0};
  std::atomic<bool> quit{false};

  // vCPU thread: waits for the next permit; false when told to quit.
  bool await(uint64_t& seen) {
    permit.wait(seen);
    seen = permit.load();
    return !quit.load();
  }
  void returned() {
    returned_at.store(now_ns());
    returned_at.notify_one();
  }
};

using bench::percentiles;
using bench::pin_to;
using bench::Stats;


int main_impl(int argc, char** argv) {
  pin_to(0);
  const size_t samples = argc > 1 ? std::strtoul(argv[1], nullptr, 10) : 3000;
  auto fail = [](const Error& e) {
    std::fprintf(stderr, "exit_bench: %s\n", e.message().c_str());
    return 1;
  };
  if (auto r = install_kick_handler(); !r) return fail(r.error());
  block_kick_signal();

  // Raw: the kick handler's immediate_exit and pthread_kill, no request accounting.
  auto raw_vm = SpinVm::create();
  if (!raw_vm) return fail(raw_vm.error());
  auto raw_fd = (*raw_vm)->vcpu();
  if (!raw_fd) return fail(raw_fd.error());
  Runner raw;
  std::thread raw_thread([&] {
    pin_to(1);
    set_thread_kvm_run(raw_fd->run_struct());
    unblock_kick_signal();
    for (uint64_t seen = 0; raw.await(seen);) {
      (void)raw_fd->run();
      raw.returned();
      __atomic_store_n(&raw_fd->run_struct()->immediate_exit, 0, __ATOMIC_RELAXED);
    }
    set_thread_kvm_run(nullptr);
  });

  // evmm: Vcpu::run_once(), woken by request_exit() or by an exit fd.
  auto vm = SpinVm::create();
  if (!vm) return fail(vm.error());
  auto fd = (*vm)->vcpu();
  if (!fd) return fail(fd.error());
  auto watcher = ExitFdWatcher::create();
  if (!watcher) return fail(watcher.error());
  Vcpu vcpu(0, std::move(*fd), (*vm)->mem, (*vm)->pio, (*vm)->mmio, (*vm)->stop, *watcher);
  auto exit_fd = vcpu.make_exit_fd();
  if (!exit_fd) return fail(exit_fd.error());
  Runner ev;
  std::thread ev_thread([&] {
    pin_to(1);
    if (!vcpu.bind_thread()) return;
    for (uint64_t seen = 0; ev.await(seen);) {
      (void)vcpu.run_once();
      ev.returned();
    }
    vcpu.unbind_thread();
  });

  // One sample: let the runner enter the guest, give it time to get there, then wake it and time
  // it. This thread sleeps meanwhile; the timestamp is taken by the vCPU thread.
  auto sample = [](Runner& r, auto&& wake) -> uint64_t {
    uint64_t before = r.returned_at.load();
    r.permit.fetch_add(1);
    r.permit.notify_one();
    pause_us(300);
    uint64_t t0 = now_ns();
    wake();
    r.returned_at.wait(before);
    return r.returned_at.load() - t0;
  };
  std::vector<uint64_t> t_raw, t_req, t_fd;
  // The order rotates from one round to the next, so that no method always follows the same one.
  auto take = [&](size_t method) {
    switch (method) {
      case 0: t_raw.push_back(sample(raw, [&] { (void)kick_thread(raw_thread.native_handle()); })); break;
      case 1: t_req.push_back(sample(ev, [&] { vcpu.request_exit(); })); break;
      default: t_fd.push_back(sample(ev, [&] { (void)exit_fd->signal(); })); break;
    }
  };
  for (size_t i = 0; i < samples; ++i)
    for (size_t k = 0; k < 3; ++k) take((i + k) % 3);
  for (Runner* r : {&raw, &ev}) {
    r->quit = true;
    r->permit.fetch_add(1);
    r->permit.notify_one();
  }
  raw_thread.join();
  ev_thread.join();

  Stats r = percentiles(t_raw), q = percentiles(t_req), f = percentiles(t_fd);
  fmt::print("exit request latency, request -> KVM_RUN returned ({} samples each, spinning real-mode guest)\n",
             samples);
  fmt::print("{:<34} {:>9} {:>9} {:>12}\n", "method", "p50 us", "p99 us", "p50 vs raw");
  fmt::print("{:<34} {:>9.1f} {:>9.1f} {:>11.2f}x\n", "raw pthread_kill + immediate_exit", r.p50, r.p99, 1.0);
  fmt::print("{:<34} {:>9.1f} {:>9.1f} {:>11.2f}x\n", "Vcpu::request_exit()", q.p50, q.p99, q.p50 / r.p50);
  fmt::print("{:<34} {:>9.1f} {:>9.1f} {:>11.2f}x\n", "exit fd write", f.p50, f.p99, f.p50 / r.p50);
  fmt::print("request_exit/raw: p50 {:.2f}x, p99 {:.2f}x (goal <= 1.10x)\n", q.p50 / r.p50, q.p99 / r.p99);
  return 0;
}

}  // namespace
}  // namespace evmm

int main(int argc, char** argv) { return evmm::main_impl(argc, argv); }
