// A full memory barrier (StoreLoad included), for protocols shared with an agent outside the C++
// memory model: a guest driver that orders its own side with mb(), as virtio's §2.7.10 event
// suppression needs.
#pragma once

#include <atomic>

#if defined(__SANITIZE_THREAD__)
#define EVMM_TSAN 1
#elif defined(__has_feature)
#if __has_feature(thread_sanitizer)
#define EVMM_TSAN 1
#endif
#endif

namespace evmm {

inline void full_barrier() {
#ifdef EVMM_TSAN
  // ThreadSanitizer does not model fences, and GCC refuses them in its builds (-Wtsan). A locked
  // read-modify-write is a full barrier on x86 as well (Linux's smp_mb() is one), and TSan accepts it.
  thread_local std::atomic<int> word;
  word.fetch_add(0, std::memory_order_seq_cst);
#else
  std::atomic_thread_fence(std::memory_order_seq_cst);
#endif
}

}  // namespace evmm
