// The cost of one PIO exit to userspace: a bare KVM_RUN loop against evmm's run loop (Vcpu::run and
// its IoBus, the port unclaimed), on two identical VMs in one process, in interleaved batches so
// that both see the same host conditions. Goal (issue 12): evmm at most 1.05x the bare loop.
//
// The guest (kGuest below) runs at CPL3 in long mode, where this host executes it natively (CPL0 is
// emulated): it writes port 0x7f0 in a loop and stores, for each write, the TSC time from the
// write to the next one, so both loops are timed the same way, by the guest. After each batch it
// writes port 0x7f1, which ends the batch: the bare loop returns on it, and in evmm a device on it
// sets the run loop's stop flag.
// Usage: evmm_pio_exit_bench [rounds] [batch]   (default 40 rounds of 500 exits per loop)
#include <pthread.h>
#include <sys/ioctl.h>

#include <algorithm>
#include <atomic>
#include <cerrno>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <memory>
#include <thread>
#include <vector>

#include <fmt/format.h>

#include "bench/stats.h"
#include "bus/io_bus.h"
#include "kvm/kvm_uapi.h"
#include "kvm/system.h"
#include "kvm/vm_fd.h"
#include "memory/guest_memory.h"
#include "vcpu/vcpu.h"

// The guest, position-independent. In: rdi = sample ring, rcx = ring mask (entries - 1), r9 = where
// to publish the sample count, r12 = writes per batch; r8 and r13 = 0.
extern "C" const uint8_t kGuest[], kGuestEnd[];
asm(R"(
  .pushsection .rodata
  .globl kGuest, kGuestEnd
kGuest:
  mov %r12, %r10
  rdtsc
  shl $32, %rdx
  or %rdx, %rax
  mov %rax, %r11
1:
  mov $0x7f0, %edx
  out %al, (%dx)
  rdtsc
  shl $32, %rdx
  or %rdx, %rax
  mov %rax, %rsi
  sub %r11, %rsi
  mov %rax, %r11
  mov %rsi, (%rdi,%r8,8)
  inc %r8
  and %rcx, %r8
  inc %r13
  mov %r13, (%r9)
  dec %r10
  jnz 1b
  mov $0x7f1, %edx
  out %al, (%dx)
  jmp kGuest
kGuestEnd:
  .popsection
)");

namespace evmm {
namespace {

constexpr uint16_t kPort = 0x7f0, kBatchEndPort = 0x7f1;
// Guest-physical layout: page tables, GDT, TSS with an all-open I/O bitmap, code, the published
// count, then the sample ring.
constexpr uint64_t kPml4 = 0x1000, kPdpt = 0x2000, kPd = 0x3000, kGdt = 0x4000, kTss = 0x6000, kCount = 0x9000,
                   kCode = 0xa000, kStack = 0x20000, kRing = 0x100000, kRingEntries = 1 << 18,
                   kMemSize = 4 << 20;
constexpr uint32_t kTssLimit = 104 + 8192;  // the TSS, then one bit per port (0: allowed)

// The guest's first kStack bytes: tables, TSS and code.
std::vector<uint8_t> guest_image() {
  std::vector<uint8_t> image(kStack);
  uint8_t* mem = image.data();
  auto put64 = [&](uint64_t at, uint64_t v) { std::memcpy(mem + at, &v, 8); };
  put64(kPml4, kPdpt | 7);  // present, writable, user
  put64(kPdpt, kPd | 7);
  for (uint64_t i = 0; i < kMemSize >> 21; ++i) put64(kPd + 8 * i, (i << 21) | 0x87);  // 2 MiB pages
  // Null, kernel code and data, user data (0x1b), user code (0x23), then the 64-bit TSS (0x28).
  const uint64_t gdt[] = {0, 0x00af9a000000ffff, 0x00cf92000000ffff, 0x00cff2000000ffff, 0x00affa000000ffff};
  std::memcpy(mem + kGdt, gdt, sizeof gdt);
  uint64_t tss_lo = (kTssLimit & 0xffff) | ((kTss & 0xffffff) << 16) | (uint64_t(0x89) << 40) |
                    (uint64_t((kTssLimit >> 16) & 0xf) << 48) | (((kTss >> 24) & 0xff) << 56);
  put64(kGdt + 0x28, tss_lo);
  put64(kGdt + 0x30, kTss >> 32);
  uint16_t iomap = 104;
  std::memcpy(mem + kTss + 0x66, &iomap, 2);
  mem[kTss + kTssLimit] = 0xff;  // the bitmap's terminating byte (SDM Vol. 1, 19.5.2)
  std::memcpy(mem + kCode, kGuest, size_t(kGuestEnd - kGuest));
  return image;
}

// Long mode at CPL3, IF=0, with the registers kGuest takes.
bool set_guest_state(int vcpu_fd, uint64_t batch) {
  kvm_sregs s{};
  if (ioctl(vcpu_fd, KVM_GET_SREGS, &s) < 0) return false;
  kvm_segment code{};
  code.limit = 0xffffffff, code.selector = 0x23, code.type = 0xb, code.present = 1, code.dpl = 3, code.s = 1,
  code.l = 1, code.g = 1;
  kvm_segment data = code;
  data.selector = 0x1b, data.type = 0x3, data.l = 0, data.db = 1;
  s.cs = code;
  s.ss = s.ds = s.es = s.fs = s.gs = data;
  s.tr = {};
  s.tr.base = kTss, s.tr.limit = kTssLimit, s.tr.selector = 0x28, s.tr.type = 0xb, s.tr.present = 1;
  s.gdt.base = kGdt, s.gdt.limit = 0x37;
  s.cr0 = 0x80050033;  // PG, WP, NE, ET, MP, PE
  s.cr3 = kPml4;
  s.cr4 = 0x20;        // PAE
  s.efer = 0x500;      // LMA, LME
  if (ioctl(vcpu_fd, KVM_SET_SREGS, &s) < 0) return false;
  kvm_regs r{};
  r.rflags = 2;
  r.rip = kCode, r.rsp = kStack;
  r.rdi = kRing, r.rcx = kRingEntries - 1, r.r9 = kCount, r.r12 = batch;
  return ioctl(vcpu_fd, KVM_SET_REGS, &r) == 0;
}

// One VM with one vCPU in that state: KVM's supported CPUID (long mode needs LM in it) and the
// in-kernel irqchip, as evmm's VMs have.
struct LoopVm {
  VmFd vm;
  GuestMemory mem;
  VcpuFd vcpu;
  uint64_t taken = 0;  // samples read so far

  static Result<std::unique_ptr<LoopVm>> create(const System& kvm, uint64_t batch) {
    VmFd vm = TRY(kvm.create_vm());
    GuestMemory mem = TRY(GuestMemory::create({{GuestAddress(0), kMemSize}}));
    TRY(mem.write(GuestAddress(0), guest_image()));
    TRY(vm.set_user_memory_region(mem.kvm_region(0)));
    TRY(vm.set_tss_addr(0xfffbd000));
    TRY(vm.create_irqchip());
    VcpuFd vcpu = TRY(vm.create_vcpu(0));
    TRY(vcpu.set_cpuid2(TRY(kvm.supported_cpuid())));
    if (!set_guest_state(vcpu.fd(), batch)) return make_error(errno, "setting the CPL3 guest state");
    return std::unique_ptr<LoopVm>(new LoopVm{std::move(vm), std::move(mem), std::move(vcpu)});
  }

  // Appends the samples (TSC cycles) the guest stored since the last call; the vCPU is not running.
  Result<void> take(std::vector<uint64_t>& out) {
    uint64_t count = TRY(mem.read_obj<uint64_t>(GuestAddress(kCount)));
    for (; taken < count; ++taken)
      out.push_back(TRY(mem.read_obj<uint64_t>(GuestAddress(kRing + 8 * (taken & (kRingEntries - 1))))));
    return {};
  }
};

// The bare loop: KVM_RUN until the batch-end port, nothing else done with an exit. Returns false on
// any other exit.
bool raw_batch(int vcpu_fd, kvm_run* run) {
  for (;;) {
    if (ioctl(vcpu_fd, KVM_RUN, 0) < 0) {
      if (errno == EINTR) continue;
      return false;
    }
    if (run->exit_reason != KVM_EXIT_IO) return false;
    if (run->io.port == kBatchEndPort) return true;
    if (run->io.port != kPort) return false;
  }
}

// The batch-end port for evmm's run loop: stops it after the exit that reached it.
struct BatchEnd final : BusDevice {
  std::atomic<bool>& stop;
  explicit BatchEnd(std::atomic<bool>& s) : stop(s) {}
  void read(const BusRead&) override {}
  void write(const BusWrite&) override { stop.store(true); }
};


int main_impl(int argc, char** argv) {
  const size_t rounds = argc > 1 ? std::strtoul(argv[1], nullptr, 10) : 40;
  const size_t batch = argc > 2 ? std::strtoul(argv[2], nullptr, 10) : 500;
  if (rounds == 0 || batch == 0 || batch >= kRingEntries) {
    std::fprintf(stderr, "usage: evmm_pio_exit_bench [rounds] [batch < %llu]\n", (unsigned long long)kRingEntries);
    return 2;
  }
  auto fail = [](const std::string& what) {
    std::fprintf(stderr, "pio_exit_bench: %s\n", what.c_str());
    return 1;
  };
  bench::pin_to(1);
  auto kvm = System::open();
  if (!kvm) return fail(kvm.error().message());
  auto raw = LoopVm::create(*kvm, batch);
  if (!raw) return fail(raw.error().message());
  auto ev = LoopVm::create(*kvm, batch);
  if (!ev) return fail(ev.error().message());
  auto khz = (*raw)->vcpu.get_tsc_khz();
  if (!khz || *khz == 0) return fail("KVM_GET_TSC_KHZ failed");

  // evmm's side: the vCPU's run loop and an empty bus but for the batch end; 0x7f0 is unclaimed.
  IoBus pio("pio"), mmio("mmio");
  std::atomic<bool> stop{false};
  if (auto r = pio.insert(kBatchEndPort, 1, std::make_shared<BatchEnd>(stop), "batch end"); !r)
    return fail(r.error().message());
  Vcpu vcpu(0, std::move((*ev)->vcpu), (*ev)->mem, pio, mmio, stop);

  std::vector<uint64_t> raw_samples, ev_samples;
  int raw_fd = (*raw)->vcpu.fd();
  kvm_run* raw_run = (*raw)->vcpu.run_struct();
  auto run_raw = [&] { return raw_batch(raw_fd, raw_run); };
  auto run_evmm = [&] {
    stop.store(false);
    VcpuStop s = vcpu.run();
    return s.kind == VcpuStopKind::Requested;
  };
  // One warm-up round each, then the measured rounds, the order alternating.
  if (!run_raw() || !run_evmm()) return fail("the guest did not reach its first batch end");
  std::vector<uint64_t> discard;
  if (!(*raw)->take(discard) || !(*ev)->take(discard)) return fail("cannot read the samples");
  for (size_t i = 0; i < rounds; ++i) {
    bool ok = i % 2 ? (run_evmm() && run_raw()) : (run_raw() && run_evmm());
    if (!ok) return fail(fmt::format("an unexpected exit in round {}", i));
    if (!(*raw)->take(raw_samples) || !(*ev)->take(ev_samples)) return fail("cannot read the samples");
  }
  if (pio.stats().unclaimed_writes.load() < rounds * batch) return fail("evmm's writes were not unclaimed");

  double cycles_per_us = double(*khz) / 1000.0;
  bench::Stats r = bench::percentiles(raw_samples, cycles_per_us), e = bench::percentiles(ev_samples, cycles_per_us);
  fmt::print("PIO exit round trip at CPL3, guest write -> userspace -> guest ({} rounds x {} exits each, tsc {} kHz)\n",
             rounds, batch, *khz);
  fmt::print("{:<40} {:>9} {:>9}\n", "loop", "p50 us", "p99 us");
  fmt::print("{:<40} {:>9.2f} {:>9.2f}\n", "bare KVM_RUN loop", r.p50, r.p99);
  fmt::print("{:<40} {:>9.2f} {:>9.2f}\n", "evmm Vcpu::run + IoBus (unclaimed)", e.p50, e.p99);
  fmt::print("evmm/bare: p50 {:.3f}x, p99 {:.3f}x (goal <= 1.05x)\n", e.p50 / r.p50, e.p99 / r.p99);
  return 0;
}

}  // namespace
}  // namespace evmm

int main(int argc, char** argv) { return evmm::main_impl(argc, argv); }
