// ThreadSanitizer builds (EVMM_SANITIZE=thread): what the tests must know about them.
#pragma once

#include <unistd.h>

namespace evmm::testing {

#if defined(__SANITIZE_THREAD__)
#define EVMM_TESTING_TSAN 1
#elif defined(__has_feature)
#if __has_feature(thread_sanitizer)
#define EVMM_TESTING_TSAN 1
#endif
#endif

#ifdef EVMM_TESTING_TSAN
inline constexpr bool kTsan = true;
#else
inline constexpr bool kTsan = false;
#endif

// GCC 12's TSan loses a signal that arrives while the receiving thread allocates its TSan signal
// context, which happens lazily, in the thread's first blocking call (SigCtx in
// tsan_interceptors_posix.cpp; LLVM has since made it a compare-exchange). A thread that a test is
// about to kick, and that will itself block (join the kicker), calls this first: the blocking
// usleep allocates the context while no signal can be on its way.
inline void prepare_thread_for_kicks() {
  if constexpr (kTsan) ::usleep(0);
}

}  // namespace evmm::testing
