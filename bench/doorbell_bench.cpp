// The event plane's doorbell, measured by the guest with rdtsc, for PIO and MMIO doorbells caught by KVM
// (ioeventfd) and, as the baseline in the same run, the same doorbells caught in userspace (a KVM exit to
// the vCPU thread, dispatched by IoEventRegistry to the same eventfd):
//  - the ring cost, from a CPL3 loop (testprog `ring3`): how long the vCPU is away from guest code per
//    notification. On hosts that emulate CPL0 this is the only place the instruction itself runs
//    natively, so the only place the path's own cost shows. Goal: ioeventfd at least 4x cheaper.
//  - the full round trip (ring -> ioeventfd -> device thread -> irqfd -> interrupt) from CPL0.
// Cycles are converted with KVM's TSC frequency for the vCPU (KVM_GET_TSC_KHZ).
//
//   evmm_doorbell_bench [n]     n round trips per case (default 1000, at most 2000)
#include <cstdio>
#include <cstdlib>
#include <string>

#include <fmt/format.h>

#include "tests/doorbell_harness.h"

using namespace evmm;
using doorbell::Exit;

namespace {

struct Case {
  const char* name;
  IoSpace space;
  Exit exit;
  bool cpl3;
  doorbell::RunResult r;
};

double us(uint64_t cycles, uint64_t khz) { return khz ? cycles * 1000.0 / khz : 0; }

}  // namespace

int main(int argc, char** argv) {
  unsigned n = argc > 1 ? std::atoi(argv[1]) : 1000;
  if (n == 0 || n > 2000) {
    std::fprintf(stderr, "usage: %s [n]  (1..2000 rings or round trips per case)\n", argv[0]);
    return 2;
  }
  std::string image = std::string(EVMM_GUEST_DIR) + "/testprog.mb.elf";
  // Rows 0-3: the ring from CPL3, where this host runs the instruction natively (the goal's measurement).
  // Rows 4-7: the full round trip from CPL0, where KVM emulates every guest instruction.
  Case cases[] = {
      {"pio  ioeventfd", IoSpace::Pio, Exit::Kernel, true, {}},  {"mmio ioeventfd", IoSpace::Mmio, Exit::Kernel, true, {}},
      {"pio  userspace", IoSpace::Pio, Exit::Userspace, true, {}}, {"mmio userspace", IoSpace::Mmio, Exit::Userspace, true, {}},
      {"pio  ioeventfd", IoSpace::Pio, Exit::Kernel, false, {}}, {"mmio ioeventfd", IoSpace::Mmio, Exit::Kernel, false, {}},
      {"pio  userspace", IoSpace::Pio, Exit::Userspace, false, {}}, {"mmio userspace", IoSpace::Mmio, Exit::Userspace, false, {}},
  };
  bool ok = true;
  for (auto& c : cases) {
    doorbell::Options o{c.space, c.exit, n};
    o.cpl3 = c.cpl3;
    c.r = doorbell::run(image, o);
    const auto& r = c.r;
    if (!r.error.empty() || !r.guest || (!c.cpl3 && r.guest->irqs != n) || r.rings != n || r.tsc_khz == 0 ||
        r.doorbell_in_kernel != (c.exit == Exit::Kernel)) {
      fmt::print("{:<16} FAILED: {} {} (rings {}, in kernel {})\n{}", c.name, r.error, r.outcome.message, r.rings,
                 r.doorbell_in_kernel, r.serial);
      ok = false;
    }
  }
  if (!ok) return 1;
  auto at = [](const Case& c, uint64_t cycles) { return us(cycles, c.r.tsc_khz); };
  fmt::print("doorbell ring cost from CPL3 (native): {} rings per case, µs per ring instruction (guest rdtsc, "
             "TSC {} kHz from KVM)\n", n, cases[0].r.tsc_khz);
  fmt::print("{:<16} {:>10} {:>10}\n", "case", "ring p50", "ring p99");
  for (int i = 0; i < 4; i++)
    fmt::print("{:<16} {:>10.2f} {:>10.2f}\n", cases[i].name, at(cases[i], cases[i].r.guest->ring_p50),
               at(cases[i], cases[i].r.guest->ring_p99));
  fmt::print("\ndoorbell round trip from CPL0 (emulated): ring -> device thread -> irqfd -> interrupt; {} per case\n", n);
  fmt::print("{:<16} {:>10} {:>10} {:>14} {:>14}\n", "case", "ring p50", "ring p99", "round trip p50", "round trip p99");
  for (int i = 4; i < 8; i++) {
    const auto& g = *cases[i].r.guest;
    fmt::print("{:<16} {:>10.2f} {:>10.2f} {:>14.2f} {:>14.2f}\n", cases[i].name, at(cases[i], g.ring_p50),
               at(cases[i], g.ring_p99), at(cases[i], g.trip_p50), at(cases[i], g.trip_p99));
  }
  auto ratio = [](const Case& user, const Case& kern, bool trip) {
    uint64_t a = trip ? user.r.guest->trip_p50 : user.r.guest->ring_p50;
    uint64_t b = trip ? kern.r.guest->trip_p50 : kern.r.guest->ring_p50;
    return b ? double(a) / double(b) : 0.0;
  };
  double pio = ratio(cases[2], cases[0], false), mmio = ratio(cases[3], cases[1], false);
  fmt::print("\nring cost from CPL3, userspace exit / ioeventfd (p50): pio {:.1f}x, mmio {:.1f}x (goal: >= 4x) {}\n", pio,
             mmio, pio >= 4 && mmio >= 4 ? "MET" : "NOT MET");
  fmt::print("ring cost from CPL0, userspace exit / ioeventfd (p50): pio {:.1f}x, mmio {:.1f}x\n",
             ratio(cases[6], cases[4], false), ratio(cases[7], cases[5], false));
  fmt::print("round trip from CPL0, userspace exit / ioeventfd (p50): pio {:.1f}x, mmio {:.1f}x\n",
             ratio(cases[6], cases[4], true), ratio(cases[7], cases[5], true));
  const Case* best = &cases[4];
  for (int i = 4; i < 8; i++)
    if (cases[i].r.guest->trip_p50 < best->r.guest->trip_p50) best = &cases[i];
  fmt::print("fastest round trip: {} (p50 {:.2f} µs)\n", best->name, at(*best, best->r.guest->trip_p50));
  return 0;
}
