// The in-process VM that the KVM test harnesses (tests/doorbell_harness.h, suspend_harness.h,
// xen_harness.h) and their benchmarks build, as an embedder would: /dev/kvm opened, a Vm from libevmm
// with 64 MiB and COM1 (and a Xen guest's console) written to a file, read back once the VM ends.
// Header-only, because the benchmarks link libevmm but not the test library.
#pragma once

#include <memory>
#include <optional>
#include <string>

#include "kvm/system.h"
#include "testing/serial_file.h"
#include "vmm/vm.h"

namespace evmm::testing {

struct TestVmOptions {
  std::string image;
  std::string cmdline;
  unsigned cpus = 1;
  int serial_in = -1;                 // what COM1 reads (the caller keeps it open), -1: nothing
  bool xen = false;                   // a Xen HVM environment (VmConfig::xen)
  std::string serial_prefix = "evmm-test";  // the output file is /tmp/<prefix>-XXXXXX
};

// One VM, created but not started. Members are destroyed in reverse order: the Vm before the System
// it was made from and before the file its serial port writes. A harness declares what the Vm's
// vCPUs may still touch (a pipe into COM1) before its TestVm, and what uses the Vm (irqfds, ioeventfd
// registrations, reader threads) after it.
class TestVm {
 public:
  TestVm() = default;
  TestVm(const TestVm&) = delete;
  TestVm& operator=(const TestVm&) = delete;

  // Empty once the Vm exists, else what failed.
  std::string create(const TestVmOptions& o) {
    if (auto e = serial_.create(o.serial_prefix); !e.empty()) return e;
    auto k = System::open();
    if (!k) return "open /dev/kvm: " + k.error().message();
    kvm_.emplace(std::move(*k));
    VmConfig cfg;
    cfg.kernel = o.image;
    cfg.cmdline = o.cmdline;
    cfg.cpus = o.cpus;
    cfg.memory_mib = 64;
    cfg.serial = SerialConfig{SerialConfig::Kind::File, serial_.path(), o.serial_in};
    if (o.xen) cfg.xen = XenConfig{};
    auto v = Vm::create(*kvm_, cfg);
    if (!v) return "Vm::create: " + v.error().message;
    vm_ = std::move(*v);
    return {};
  }

  Vm& vm() { return *vm_; }
  Vm* operator->() { return vm_.get(); }
  explicit operator bool() const { return vm_ != nullptr; }

  // Waits for the VM to end; returns what the guest wrote to COM1 (or the Xen console).
  std::string finish(VmOutcome* out = nullptr) {
    VmOutcome o = vm_->wait();
    if (out) *out = o;
    return serial_.contents();
  }
  // What the guest wrote so far (all of it once the VM has ended).
  std::string serial() const { return serial_.contents(); }

 private:
  SerialFile serial_;
  std::optional<System> kvm_;
  std::unique_ptr<Vm> vm_;
};

}  // namespace evmm::testing
