// Kicking a vCPU thread out of KVM_RUN from any thread.
//
// evmm uses the real-time signal SIGRTMIN (kKickSignal). Its handler, installed once per process
// without SA_RESTART, sets kvm_run->immediate_exit of the vCPU that runs on the interrupted thread,
// found through thread-local state. Whether the signal lands before KVM_RUN is entered (the run
// returns EINTR at once because immediate_exit is set) or inside it (KVM returns EINTR), the vCPU
// thread gets back to the VMM: the race-free pattern from the KVM API documentation. The signal is
// never blocked on vCPU threads; other threads block it so a stray kick cannot hit them.
#pragma once

#include "kvm/kvm_uapi.h"
#include <pthread.h>

#include "base/result.h"

namespace evmm {

// Installs the handler (idempotent) and returns the signal number.
Result<int> install_kick_handler();
int kick_signal();

// Called by a vCPU thread before its first run; nullptr when the thread stops running a vCPU.
void set_thread_kvm_run(kvm_run* run);

// Sends the kick signal to a vCPU thread.
Result<void> kick_thread(pthread_t thread);

// Blocks the kick signal in the calling thread (non-vCPU threads call this), or unblocks it (a
// vCPU thread, before its first run).
void block_kick_signal();
void unblock_kick_signal();

}  // namespace evmm
