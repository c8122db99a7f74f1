// One vCPU: its KVM fd, its thread's run loop, and the dispatch of the exits that reach userspace.
#pragma once

#include <pthread.h>

#include <array>
#include <atomic>
#include <string>

#include "bus/io_bus.h"
#include "kvm/vcpu_fd.h"
#include "memory/guest_memory.h"
#include "vcpu/assist.h"

namespace evmm {

struct VcpuStats {
  std::atomic<uint64_t> runs{0};
  std::atomic<uint64_t> pio_exits{0};
  std::atomic<uint64_t> mmio_exits{0};
  std::atomic<uint64_t> interrupted{0};
  std::array<std::atomic<uint64_t>, static_cast<size_t>(AssistKind::Count)> assists{};
};

// Why a run loop ended.
enum class VcpuStopKind {
  Requested,    // the VM asked every vCPU to stop (a device, the API, another vCPU)
  TripleFault,  // KVM_EXIT_SHUTDOWN
  GuestError,   // an instruction evmm cannot complete, a failed entry, a KVM internal error
  VmmError,     // a KVM ioctl failed
};

struct VcpuStop {
  VcpuStopKind kind;
  std::string message;  // one line, empty for Requested
};

class Vcpu {
 public:
  Vcpu(unsigned id, VcpuFd fd, const GuestMemory& mem, IoBus& pio, IoBus& mmio, const std::atomic<bool>& stop)
      : id_(id), fd_(std::move(fd)), mem_(mem), pio_(pio), mmio_(mmio), stop_(stop) {}

  unsigned id() const { return id_; }
  const VcpuFd& fd() const { return fd_; }
  const VcpuStats& stats() const { return stats_; }

  // Runs the vCPU on the calling thread until the stop flag is set or the vCPU cannot go on.
  VcpuStop run();
  // Gets the vCPU thread out of KVM_RUN so that it sees the stop flag; callable from any thread.
  void kick();

 private:
  // One exit; returns false with *stop filled when the loop must end.
  bool handle_exit(const VcpuExit& exit, VcpuStop* stop);
  bool complete_emulation(std::span<const uint8_t> insn, VcpuStop* stop);

  unsigned id_;
  VcpuFd fd_;
  const GuestMemory& mem_;
  IoBus& pio_;
  IoBus& mmio_;
  const std::atomic<bool>& stop_;
  std::atomic<bool> running_{false};
  pthread_t thread_{};
  VcpuStats stats_;
};

}  // namespace evmm
