// Kicking a vCPU thread out of KVM_RUN from any thread.
//
// The signal: evmm uses the real-time signal SIGRTMIN (kick_signal()). Real-time signals queue, so
// every pthread_kill runs the handler once; exit requests (vcpu/exit_request.h) count on that.
//
// The handler, installed once per process without SA_RESTART, sets kvm_run->immediate_exit of the
// vCPU that runs on the interrupted thread, found through initial-exec thread-local state, and then
// counts the kick for that vCPU. Whether the signal lands before KVM_RUN is entered (the run returns
// EINTR at once because immediate_exit is set) or inside it, in guest mode or halted in the kernel
// (KVM returns EINTR), the vCPU thread gets back to the VMM: the race-free pattern of the KVM API
// documentation (KVM_CAP_IMMEDIATE_EXIT).
//
// The mask: every thread that is not a vCPU thread blocks the signal (block_kick_signal(); threads
// inherit the mask, so Vm::start blocks it before it creates threads), and each vCPU thread unblocks
// it (unblock_kick_signal()) before its first run. A kick is only ever sent with pthread_kill to a
// vCPU thread, so a blocked signal never piles up anywhere else.
#pragma once

#include "kvm/kvm_uapi.h"
#include <pthread.h>

#include <atomic>
#include <cstdint>

#include "base/result.h"

namespace evmm {

// Installs the handler (idempotent) and returns the signal number.
Result<int> install_kick_handler();
int kick_signal();

// Called by a vCPU thread before its first run; nullptr when the thread stops running a vCPU.
// When handled is given, the handler adds one to it after it has set immediate_exit.
void set_thread_kvm_run(kvm_run* run, std::atomic<uint64_t>* handled = nullptr);

// Sends the kick signal to a vCPU thread.
Result<void> kick_thread(pthread_t thread);

// Blocks the kick signal in the calling thread (non-vCPU threads call this), or unblocks it (a
// vCPU thread, before its first run).
void block_kick_signal();
void unblock_kick_signal();

}  // namespace evmm
