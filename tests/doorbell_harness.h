// The host half of the doorbell round trip (guests/testprog/doorbell.c), shared by tests/doorbell_test.cpp
// and bench/doorbell_bench.cpp. The caller is the VMM, as an embedder would be: it builds a Vm from
// libevmm, registers an ioeventfd on the doorbell, and runs a device on its own EventLoop that answers
// each ring with one edge on GSI 11 through an irqfd.
//
// Exit::Kernel: the doorbell registration goes to KVM (KVM_IOEVENTFD); a ring never leaves the kernel.
// Exit::Userspace: the same registration plus a datamatch companion on the same address, a group KVM
// cannot hold, so IoEventRegistry keeps both in userspace: each ring is a KVM_EXIT_IO/MMIO to the vCPU
// thread, which dispatches it to the same eventfd. Same guest, same device, same irqfd: only where the
// write is caught differs. (Filling KVM's bus does not work: ioeventfds do not count toward its
// 1000-device limit on current kernels.)
//
// The device runs on its own event loop, as an embedder's device would; its irqfd is on the Vm's
// VmFd.
#pragma once

#include <fcntl.h>
#include <poll.h>
#include <sys/epoll.h>
#include <unistd.h>

#include <atomic>
#include <cstdio>
#include <cstdlib>
#include <memory>
#include <optional>
#include <set>
#include <sstream>
#include <string>
#include <vector>

#include <fmt/format.h>

#include "base/eventfd.h"
#include "event/event_loop.h"
#include "event/eventfd_interrupt_line.h"
#include "event/io_event_registry.h"
#include "kvm/vm_fd.h"
#include "testing/test_vm.h"
#include "vmm/vm.h"

namespace evmm::doorbell {

// The embedder's own doorbell, passed to the guest as at= and gsi=. Not evmm's platform doorbell
// (port 0x6f0, MMIO 0xd0000000, GSI 10, src/devices/doorbell.h), which the Vm may already serve: two
// wildcard registrations on one address would leave the kernel and both devices would answer.
constexpr uint16_t kPort = 0x6f8;
constexpr uint64_t kMmio = 0xd0001000;
constexpr uint32_t kGsi = 11;

enum class Exit { Kernel, Userspace };

struct Options {
  IoSpace space = IoSpace::Pio;
  Exit exit = Exit::Kernel;
  unsigned n = 200;
  // The `ring3` word instead of `doorbell`: the guest rings n times from CPL3, natively, with no answer
  // awaited; the device still answers (the guest has the pin masked), and only the ring is timed.
  bool cpl3 = false;
  int timeout_ms = 300000;
};

// What the guest printed: see guests/README.md, `doorbell` and `ring3` (no round trips, no interrupts).
struct GuestReport {
  std::string mode;
  bool cpl3 = false;
  uint64_t n = 0, ring_p50 = 0, ring_p99 = 0, trip_p50 = 0, trip_p99 = 0, tsc_khz = 0, irqs = 0;
};

struct RunResult {
  std::string error;  // set when the harness itself failed
  VmOutcome outcome{VmOutcome::Kind::VmmError, 0, {}};
  std::string serial;
  std::optional<GuestReport> guest;
  uint64_t rings = 0;      // eventfd counts the device consumed
  uint64_t wakeups = 0;    // times the device woke with a non-zero count
  uint64_t triggers = 0;   // irqfd writes
  uint64_t tsc_khz = 0;    // KVM's guest TSC frequency: the guest's own calibration is rough when emulated
  bool doorbell_in_kernel = false;
  VmStats stats;
};

// The device: wakes on the doorbell eventfd, answers with one irqfd write per wake-up.
class Device final : public EventSubscriber {
 public:
  Device(std::shared_ptr<const EventFd> bell, std::shared_ptr<EventFdInterruptLine> line)
      : bell_(std::move(bell)), line_(std::move(line)) {}
  void init(EventOps& ops) override {
    if (!ops.add(bell_->fd(), EPOLLIN, 0)) failed_ = true;
  }
  void process(const Event&, EventOps&) override {
    auto c = bell_->consume();
    if (!c || *c == 0) return;
    rings += *c;
    ++wakeups;
    line_->trigger();
    ++triggers;
  }
  std::atomic<uint64_t> rings{0}, wakeups{0}, triggers{0};
  bool failed_ = false;

 private:
  std::shared_ptr<const EventFd> bell_;
  std::shared_ptr<EventFdInterruptLine> line_;
};

inline std::optional<GuestReport> parse(const std::string& serial) {
  std::istringstream in(serial);
  std::string line;
  GuestReport r;
  bool summary = false, tsc = false;
  while (std::getline(in, line)) {
    char mode[8] = {};
    unsigned long n, a, b, c, d;
    if (std::sscanf(line.c_str(), "doorbell: %7s %lu round trips, ring p50 %lu p99 %lu cycles, round trip p50 %lu p99 %lu cycles",
                    mode, &n, &a, &b, &c, &d) == 6) {
      r.mode = mode, r.n = n, r.ring_p50 = a, r.ring_p99 = b, r.trip_p50 = c, r.trip_p99 = d;
      summary = true;
    } else if (std::sscanf(line.c_str(), "doorbell: tsc %lu kHz, %lu interrupts", &a, &b) == 2) {
      r.tsc_khz = a, r.irqs = b;
      tsc = true;
    } else if (std::sscanf(line.c_str(), "ring3: %7s %lu rings, p50 %lu p99 %lu cycles, tsc %lu kHz", mode, &n, &a, &b,
                           &c) == 5) {
      r.mode = mode, r.n = n, r.ring_p50 = a, r.ring_p99 = b, r.tsc_khz = c, r.cpl3 = true;
      summary = tsc = true;
    }
  }
  if (!summary || !tsc) return std::nullopt;
  return r;
}

inline RunResult run(const std::string& image, const Options& o) {
  RunResult res;
  auto fail = [&](std::string why) {
    res.error = std::move(why);
    return res;
  };
  testing::TestVm vm;
  std::string cmdline = fmt::format("{}={} n={} at={:#x} gsi={}", o.cpl3 ? "ring3" : "doorbell",
                                    o.space == IoSpace::Pio ? "pio" : "mmio", o.n, o.space == IoSpace::Pio ? kPort : kMmio, kGsi);
  if (auto e = vm.create({image, cmdline, 1, -1, false, "evmm-doorbell"}); !e.empty()) return fail(e);
  const VmFd& vmfd = vm->vm_fd();

  auto line = EventFdInterruptLine::create(vmfd, kGsi, EventFdInterruptLine::Mode::Edge);
  if (!line) return fail("irqfd on GSI 11: " + line.error().message());
  auto bell_fd = EventFd::create();
  if (!bell_fd) return fail("eventfd: " + bell_fd.error().message());
  auto bell = std::make_shared<const EventFd>(std::move(*bell_fd));

  IoEventRegistry& reg = vm->io_events();
  uint64_t addr = o.space == IoSpace::Pio ? kPort : kMmio;
  size_t k0 = reg.stats().in_kernel;
  auto doorbell = reg.add(o.space, addr, 4, IoMatch::any(), bell);
  if (!doorbell) return fail("doorbell registration: " + doorbell.error().message());
  std::optional<IoEventRegistration> companion;
  if (o.exit == Exit::Userspace) {
    // KVM refuses a wildcard and a datamatch on one address (ioeventfd_check_collision), so the
    // registry takes the whole group out of the kernel. The guest never writes 0xffffffff.
    auto dummy = EventFd::create();
    if (!dummy) return fail("eventfd: " + dummy.error().message());
    auto c = reg.add(o.space, addr, 4, IoMatch::value(0xffffffff), std::make_shared<const EventFd>(std::move(*dummy)));
    if (!c) return fail("companion registration: " + c.error().message());
    companion.emplace(std::move(*c));
  }
  res.doorbell_in_kernel = reg.stats().in_kernel > k0;

  auto loop = EventLoop::create();
  if (!loop) return fail("event loop: " + loop.error().message());
  auto dev = std::make_shared<Device>(bell, *line);
  if (!(*loop)->add(dev) || dev->failed_) return fail("event loop: cannot watch the doorbell");
  if (!(*loop)->start()) return fail("event loop: cannot start");

  if (auto khz = vm->vcpu(0).fd().get_tsc_khz()) res.tsc_khz = *khz;
  if (auto s = vm->start(); !s) return fail("Vm::start: " + s.error().message());
  pollfd p{vm->stopped_fd(), POLLIN, 0};
  if (::poll(&p, 1, o.timeout_ms) == 0) vm->interrupt(fmt::format("doorbell: no end after {} ms", o.timeout_ms));
  res.serial = vm.finish(&res.outcome);
  res.stats = vm->stats();
  (*loop)->stop();
  res.rings = dev->rings, res.wakeups = dev->wakeups, res.triggers = dev->triggers;

  res.guest = parse(res.serial);
  return res;
}

}  // namespace evmm::doorbell
