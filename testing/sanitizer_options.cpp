// Default runtime options of the sanitizers, linked into every host executable of a sanitizer build
// (EVMM_SANITIZE). Compiled in rather than set in the environment, so that a test binary run by
// hand, and every evmm child a KVM test spawns, fail the same way as under ctest. An
// ASAN_OPTIONS/UBSAN_OPTIONS/TSAN_OPTIONS variable still overrides them.
//
// abort_on_error: a report ends the process with SIGABRT. The sanitizers' own default is exit
// status 1 (66 for TSan), and 1 is what evmm returns for a guest's debug-exit write of 0, the status
// most KVM tests expect; a report in an evmm child must never pass for a guest's answer.
extern "C" {

// halt_on_error is ASan's default; spelled out so that no report is ever only a warning. Leak
// checking (detect_leaks) is on by default on Linux.
const char* __asan_default_options() { return "halt_on_error=1:abort_on_error=1"; }

// The build also passes -fno-sanitize-recover=all, so every UBSan check is fatal.
const char* __ubsan_default_options() { return "halt_on_error=1:abort_on_error=1:print_stacktrace=1"; }

const char* __tsan_default_options() { return "halt_on_error=1:abort_on_error=1:second_deadlock_stack=1"; }

}  // extern "C"
