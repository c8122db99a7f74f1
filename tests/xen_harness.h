// The host half of the Xen test guest's backend words (guests/README.md, `backend=` and
// `bench-backend=`), shared by tests/xen_backend_test.cpp and bench/xen_bench.cpp. The caller is the
// VMM, as an embedder would be: it builds a Vm with Xen from libevmm, binds a backend port to an
// eventfd before the guest runs, and reads that eventfd on a thread of its own, optionally raising
// the port back after each signal (an echo backend).
#pragma once

#include <poll.h>
#include <time.h>

#include <atomic>
#include <chrono>
#include <functional>
#include <memory>
#include <mutex>
#include <optional>
#include <string>
#include <thread>
#include <vector>

#include "base/eventfd.h"
#include "testing/test_vm.h"
#include "vmm/vm.h"

namespace evmm::xen_test {

// A fresh table hands out its lowest free port: the backend bound before the guest runs gets 1.
constexpr uint32_t kBackendPort = 1;

inline uint64_t now_ns() {
  timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return uint64_t(ts.tv_sec) * 1'000'000'000u + uint64_t(ts.tv_nsec);
}

inline bool wait_for(const std::function<bool()>& cond, std::chrono::milliseconds limit = std::chrono::seconds(30)) {
  for (auto end = std::chrono::steady_clock::now() + limit; std::chrono::steady_clock::now() < end;) {
    if (cond()) return true;
    std::this_thread::sleep_for(std::chrono::milliseconds(1));
  }
  return cond();
}

struct Options {
  std::string cmdline;
  unsigned cpus = 2;
  bool echo = false;  // raise the port back after each signal
};

// One VM. Members are destroyed in reverse order: the reader thread stops before the port and the Vm.
struct Guest {
  testing::TestVm vm;
  std::shared_ptr<const EventFd> backend_fd;
  EvtchnBackendPort backend;
  std::optional<EventFd> quit;
  std::mutex mu;
  std::vector<uint64_t> wakes_ns;   // when the reader woke, per read
  std::vector<uint64_t> raises_ns;  // when it raised the port back (echo)
  std::atomic<uint64_t> signals{0};  // eventfd counts read
  std::thread reader;

  Guest() = default;
  Guest(const Guest&) = delete;
  Guest& operator=(const Guest&) = delete;
  ~Guest() {
    stop_reader();
  }

  // Empty once the vCPUs run, else what failed.
  std::string boot(const std::string& image, const Options& o) {
    if (auto e = vm.create({image, o.cmdline, o.cpus, -1, true, "evmm-xen"}); !e.empty()) return e;
    auto efd = EventFd::create();
    auto q = EventFd::create();
    if (!efd || !q) return "eventfd failed";
    backend_fd = std::make_shared<const EventFd>(std::move(*efd));
    quit.emplace(std::move(*q));
    auto port = vm->xen()->event_channels().bind_backend(0, backend_fd);
    if (!port) return port.error().message();
    if (port->port() != kBackendPort) return "the backend port is not port 1";
    backend = std::move(*port);
    reader = std::thread([this, echo = o.echo] { read_loop(echo); });
    if (auto s = vm->start(); !s) return s.error().message();
    return {};
  }

  void read_loop(bool echo) {
    pollfd p[2] = {{backend_fd->fd(), POLLIN, 0}, {quit->fd(), POLLIN, 0}};
    for (;;) {
      if (::poll(p, 2, -1) < 0) return;
      if (p[1].revents) return;
      uint64_t t = now_ns();
      auto n = backend_fd->consume();
      if (!n) continue;
      signals.fetch_add(*n);
      std::lock_guard l(mu);
      wakes_ns.push_back(t);
      if (echo) {
        raises_ns.push_back(now_ns());
        (void)backend.raise();
      }
    }
  }

  void stop_reader() {
    if (!reader.joinable()) return;
    (void)quit->signal();
    reader.join();
  }

  // Waits for the VM to end; returns what the guest wrote to the console.
  std::string finish(VmOutcome* out = nullptr) {
    std::string console = vm.finish(out);
    stop_reader();
    return console;
  }
};

}  // namespace evmm::xen_test
