// Xen event channel latencies against a plain userspace exit, in one run of the Xen test guest
// (guests/README.md: `bench-ipi`, which also times the exit, and `bench-backend=`):
//   exit      the guest's port write that evmm handles in userspace, round trip (guest rdtsc)
//   IPI       EVTCHNOP_send on vCPU 0 until the upcall handler runs on vCPU 1, and the round trip
//             back (guest rdtsc)
//   backend   the guest's send on a backend port until the backend's eventfd reader wakes, as the
//             round trip host raise -> guest upcall -> guest send -> reader wakes (host clock),
//             since guest and host clocks cannot be compared one way
// Usage: evmm_xen_bench [n]   (n rounds per case, 10..2000, default 200)
#include <cstdio>
#include <cstdlib>
#include <string>

#include <fmt/format.h>

#include "bench/stats.h"
#include "tests/xen_harness.h"

using namespace evmm;

namespace {

struct GuestLine {
  double p50 = 0, p99 = 0, p50b = 0, p99b = 0;
  bool found = false;
};

GuestLine find(const std::string& out, const char* prefix, const char* format, int fields) {
  GuestLine g;
  // At the start of a line: the guest's "-- " progress lines mention the words too.
  size_t at = out.find(std::string("\n") + prefix);
  if (at == std::string::npos) return g;
  unsigned n;
  unsigned long long a = 0, b = 0, c = 0, d = 0;
  int got = std::sscanf(out.c_str() + at + 1, format, &n, &a, &b, &c, &d);
  g.found = got == fields;
  g.p50 = double(a), g.p99 = double(b), g.p50b = double(c), g.p99b = double(d);
  return g;
}

}  // namespace

int main(int argc, char** argv) {
  int n = argc > 1 ? std::atoi(argv[1]) : 200;
  if (n < 10 || n > 2000) {
    std::fprintf(stderr, "usage: %s [n]  (10..2000 rounds per case)\n", argv[0]);
    return 2;
  }
  xen_test::Guest g;
  std::string cmdline = fmt::format("bench-ipi n={0} bench-backend={1} n={0}", n, xen_test::kBackendPort);
  if (auto e = g.boot(std::string(EVMM_GUEST_DIR) + "/xen64.pvh.elf", {.cmdline = cmdline, .cpus = 2, .echo = true});
      !e.empty()) {
    std::fprintf(stderr, "cannot boot the Xen guest: %s\n", e.c_str());
    return 1;
  }
  VmOutcome outcome;
  std::string out = g.finish(&outcome);
  if (outcome.kind != VmOutcome::Kind::PowerOff) {
    std::fprintf(stderr, "the guest did not finish: %s\n%s", outcome.message.c_str(), out.c_str());
    return 1;
  }
  GuestLine exit = find(out, "bench-exit:", "bench-exit: %u pio round trip p50 %llu p99 %llu cycles", 3);
  GuestLine ipi = find(out, "bench-ipi:", "bench-ipi: %u send->handler p50 %llu p99 %llu cycles, round trip p50 %llu p99 %llu cycles", 5);
  unsigned khz = 0;
  if (size_t at = out.find("\nbench: tsc"); at != std::string::npos) std::sscanf(out.c_str() + at + 1, "bench: tsc %u kHz", &khz);
  if (!exit.found || !ipi.found || khz == 0) {
    std::fprintf(stderr, "unexpected guest output:\n%s", out.c_str());
    return 1;
  }
  auto us = [&](double cycles) { return cycles / double(khz) * 1000.0; };
  // Round trips on the host: from each raise to the next wake of the reader.
  std::vector<uint64_t> trips;
  for (size_t i = 0; i + 1 < g.wakes_ns.size() && i < g.raises_ns.size(); i++) trips.push_back(g.wakes_ns[i + 1] - g.raises_ns[i]);
  auto backend = bench::percentiles(trips);

  fmt::print("Xen event channels on the userspace path, {} rounds per case (guest TSC {} kHz)\n", n, khz);
  fmt::print("{:<58} {:>9} {:>9}\n", "case (µs)", "p50", "p99");
  fmt::print("{:<58} {:>9.1f} {:>9.1f}\n", "userspace exit round trip (guest port write)", us(exit.p50), us(exit.p99));
  fmt::print("{:<58} {:>9.1f} {:>9.1f}\n", "IPI: send on vCPU 0 -> upcall handler on vCPU 1", us(ipi.p50), us(ipi.p99));
  fmt::print("{:<58} {:>9.1f} {:>9.1f}\n", "IPI round trip (vCPU 0 -> 1 -> 0)", us(ipi.p50b), us(ipi.p99b));
  fmt::print("{:<58} {:>9.1f} {:>9.1f}\n", "backend round trip: raise -> upcall -> send -> reader wakes", backend.p50,
             backend.p99);
  fmt::print("\nIPI one way / userspace exit (p50): {:.1f}x; backend round trip / userspace exit (p50): {:.1f}x\n",
             ipi.p50 / exit.p50, backend.p50 / us(exit.p50));
  fmt::print("hypercalls {}, upcalls {}, backend signals {}\n", g.vm->xen()->stats().hypercalls,
             g.vm->xen()->stats().upcalls, g.signals.load());
  return 0;
}
