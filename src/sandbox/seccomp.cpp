#include "sandbox/seccomp.h"

#include <linux/prctl.h>
#include <sched.h>
#include <seccomp.h>
#include <signal.h>
#include <sys/socket.h>
#include <sys/syscall.h>
#include <unistd.h>

#include <algorithm>
#include <array>
#include <cerrno>
#include <cstdlib>
#include <cstring>
#include <mutex>

namespace evmm::seccomp {
namespace {

// Every thread: memory, futexes, time, signals (the kick, the trap's own exit), writing to fds it
// already has (eventfds, serial output, logs), and leaving.
const char* const kCommon[] = {
    "read", "write", "readv", "writev", "close", "lseek", "fstat", "newfstatat",
    "mmap", "munmap", "mprotect", "madvise", "brk", "mremap",
    "futex", "sched_yield", "gettid", "getpid", "tgkill",
    "rt_sigreturn", "rt_sigprocmask", "rt_sigaction", "restart_syscall",
    "clock_gettime", "clock_nanosleep", "nanosleep", "exit", "exit_group",
};

// A vCPU thread also sleeps while suspended (ppoll on its wake eventfd) and reprograms the RTC's
// timerfd when the guest writes the RTC. Its ioctls are KVM's (see kKvmIoctlType).
const char* const kVcpu[] = {"ppoll", "poll", "timerfd_settime", "timerfd_gettime"};

// An event loop waits in epoll and changes what it watches (serial input pauses while the UART
// is full); the RTC timer lives on it.
const char* const kDevice[] = {"epoll_wait", "epoll_pwait", "epoll_pwait2", "epoll_ctl", "ppoll", "poll",
                               "timerfd_settime", "timerfd_gettime",
                               // virtio-rng fills the guest's buffers from getrandom;
                               "getrandom",
                               // virtio-blk: the loop submits to and reaps its io_uring;
                               "io_uring_enter",
                               // its thread-pool workers (this role too) read, write, sync and
                               // punch or zero ranges of the image they were given.
                               "preadv", "pwritev2", "fdatasync", "fallocate"};

// A vhost-user backend (evmm device) runs as a device loop on its main thread, once its frontend is
// connected and its device made. Beyond the device's calls it receives messages with fds (memory
// regions, kick and call eventfds: recvmsg), answers them (sendto), and maps the memory the fds
// give (mmap, in kCommon; fcntl to duplicate a region's fd when the table changes).
const char* const kBackend[] = {"recvmsg", "sendto", "sendmsg", "fcntl"};

// A vhost-user frontend (--disk vhost-user=) speaks to its backend on the connection main made:
// main negotiates when it builds the device (and sets the socket's timeouts), the vCPU thread that
// writes DRIVER_OK or a reset sends the memory table and rings and reads the replies. No new socket.
const char* const kVhostFrontend[] = {"sendmsg", "recvmsg"};

// The control API's thread accepts on the socket main bound (accept4), checks each peer's uid
// (getsockopt SO_PEERCRED), bounds a slow reader (setsockopt SO_SNDTIMEO), reads and answers
// (recvfrom, sendto) and waits in poll. What a request makes the VMM do (pause: kick the vCPUs and
// wait for them) is futexes, eventfd writes and tgkill, all in kCommon. No open, no socket, no
// connect: a request never reaches a file or another peer.
const char* const kApi[] = {"accept4", "getsockopt", "setsockopt", "recvfrom", "sendto", "poll", "ppoll"};

// The gdb server reads, writes and polls the connection main accepted before the filters, its
// eventfds, and the vCPUs' registers and debug state (KVM ioctls): no socket calls of its own.
const char* const kDebugger[] = {"ppoll", "poll"};

// The main thread builds VMs (again on a guest reset): it opens images, makes guest memory and the
// fds the devices use, starts threads (which then install their own filters), and waits for
// signals. It never executes programs or ptraces; its only sockets are --net socket= backends
// (socket, limited to AF_UNIX below; bind to autobind; connect to the peer).
const char* const kMain[] = {
    "socket", "bind", "connect",
    "openat", "fcntl", "dup", "statx", "pread64", "memfd_create", "ftruncate", "fallocate",
    "eventfd2", "epoll_create1", "epoll_ctl", "epoll_wait", "epoll_pwait", "timerfd_create",
    "timerfd_settime", "timerfd_gettime", "signalfd4", "ppoll", "poll", "pipe2",
    "set_robust_list", "rseq", "sched_getaffinity", "getrlimit", "prlimit64", "seccomp",
    // virtio-blk makes its io_uring here and registers the ring's completion eventfd.
    "io_uring_setup", "io_uring_register",
    // a vhost-user frontend's connection gives up on a silent backend (SO_RCVTIMEO, SO_SNDTIMEO).
    "setsockopt",
    // the control API's socket goes when evmm does (api/api_server.h); openat could already
    // truncate any file main may open, so unlink gives it little more.
    "unlink",
};

// ioctls: KVM's (type 0xAE: /dev/kvm, the VM and its vCPUs) on every thread; the main thread and
// a backend (`evmm device console` puts back its terminal's mode when the frontend goes) also read
// and set the terminal mode of standard input.
constexpr uint64_t kKvmIoctlType = 0xae00;
constexpr uint64_t kTerminalIoctls[] = {0x5401 /* TCGETS */, 0x5402 /* TCSETS */, 0x5403 /* TCSETSW */,
                                        0x5404 /* TCSETSF */, 0x5413 /* TIOCGWINSZ */};
// A --net tap= backend attaches its /dev/net/tun fd to the interface: the main thread only.
constexpr uint64_t kTunSetIff = 0x400454ca;

// One argument comparison, every field named: libseccomp's SCMP_A* macros leave datum_b out, which
// clang's -Wmissing-field-initializers rejects.
scmp_arg_cmp arg(unsigned n, scmp_compare op, uint64_t a, uint64_t b = 0) {
  return scmp_arg_cmp{.arg = n, .op = op, .datum_a = a, .datum_b = b};
}

template <size_t N>
void append(std::vector<std::string>& out, const char* const (&names)[N]) {
  for (const char* n : names) out.emplace_back(n);
}

// Names of the syscalls by number, resolved once at the first install, so that the trap handler
// needs no allocation.
constexpr int kMaxSyscall = 512;
std::array<char[32], kMaxSyscall> g_names{};
const char* g_role[6] = {"main", "vcpu", "device", "debugger", "backend", "api"};
thread_local int t_role = -1;
std::once_flag g_once;

// Async-signal-safe: formats with nothing but stack buffers and write(2).
void put(char*& p, const char* end, const char* s) {
  while (*s && p < end) *p++ = *s++;
}

void on_sigsys(int, siginfo_t* si, void*) {
  char line[192], *p = line, *end = line + sizeof line - 1;
  int nr = si->si_syscall;
  char num[16], *q = num + sizeof num;
  *--q = 0;
  unsigned v = nr < 0 ? 0u : unsigned(nr);
  do *--q = char('0' + v % 10); while ((v /= 10) && q > num);
  put(p, end, "evmm: seccomp: a ");
  // A thread without a filter of its own is bound by the main thread's, which it inherited.
  put(p, end, t_role >= 0 ? g_role[t_role] : "main (inherited)");
  put(p, end, " thread made system call ");
  put(p, end, nr >= 0 && nr < kMaxSyscall && g_names[nr][0] ? g_names[nr] : "?");
  put(p, end, " (");
  put(p, end, q);
  put(p, end, "), which its filter forbids; stopping (--no-seccomp turns the filters off)\n");
  [[maybe_unused]] auto n = ::write(STDERR_FILENO, line, size_t(p - line));
  // SA_RESETHAND made SIGSYS's action the default again and SA_NODEFER left it unblocked.
  ::syscall(SYS_tgkill, ::getpid(), ::gettid(), SIGSYS);
}

void prepare_once() {
  for (int nr = 0; nr < kMaxSyscall; ++nr) {
    char* name = seccomp_syscall_resolve_num_arch(SCMP_ARCH_NATIVE, nr);
    if (!name) continue;
    std::strncpy(g_names[nr], name, sizeof g_names[nr] - 1);
    std::free(name);
  }
}

Result<void> add(scmp_filter_ctx ctx, const std::string& name, Role role) {
  int nr = seccomp_syscall_resolve_name(name.c_str());
  if (nr == __NR_SCMP_ERROR) return make_error(EINVAL, "seccomp: no system call named {}", name);
  if (name == "ioctl") {
    int r = seccomp_rule_add(ctx, SCMP_ACT_ALLOW, nr, 1, arg(1, SCMP_CMP_MASKED_EQ, 0xff00, kKvmIoctlType));
    if (r == 0 && (role == Role::Main || role == Role::Backend))
      for (uint64_t cmd : kTerminalIoctls)
        if ((r = seccomp_rule_add(ctx, SCMP_ACT_ALLOW, nr, 1, arg(1, SCMP_CMP_EQ, cmd))) != 0) break;
    if (r == 0 && role == Role::Main) r = seccomp_rule_add(ctx, SCMP_ACT_ALLOW, nr, 1, arg(1, SCMP_CMP_EQ, kTunSetIff));
    if (r != 0) return make_error(-r, "seccomp: rule for ioctl");
    return {};
  }
  int r = 0;
  if (name == "clone")  // threads only: no fork, no new namespaces
    r = seccomp_rule_add(ctx, SCMP_ACT_ALLOW, nr, 1, arg(0, SCMP_CMP_MASKED_EQ, CLONE_THREAD, CLONE_THREAD));
  else if (name == "socket")  // Unix sockets only: a guest never gets evmm onto the network
    r = seccomp_rule_add(ctx, SCMP_ACT_ALLOW, nr, 1, arg(0, SCMP_CMP_EQ, AF_UNIX));
  else if (name == "prctl")  // what installing a filter needs
    for (uint64_t op : {uint64_t(PR_SET_NO_NEW_PRIVS), uint64_t(PR_GET_SECCOMP), uint64_t(PR_SET_SECCOMP)}) {
      if ((r = seccomp_rule_add(ctx, SCMP_ACT_ALLOW, nr, 1, arg(0, SCMP_CMP_EQ, op))) != 0) break;
    }
  else
    r = seccomp_rule_add(ctx, SCMP_ACT_ALLOW, nr, 0);
  if (r != 0) return make_error(-r, "seccomp: rule for {}", name);
  return {};
}

}  // namespace

const char* to_string(Role role) { return g_role[static_cast<int>(role)]; }

const std::vector<std::string>& allowed(Role role) {
  static const auto lists = [] {
    std::array<std::vector<std::string>, 6> l;
    for (auto& v : l) append(v, kCommon), v.emplace_back("ioctl");
    append(l[0], kMain), append(l[0], kVcpu), append(l[0], kDevice), append(l[0], kDebugger);
    l[0].emplace_back("clone"), l[0].emplace_back("prctl");
    append(l[0], kVhostFrontend);
    append(l[1], kVcpu), append(l[1], kVhostFrontend);
    append(l[2], kDevice);
    append(l[3], kDebugger);
    append(l[4], kDevice), append(l[4], kBackend);
    append(l[5], kApi);
    for (auto& v : l) {
      std::sort(v.begin(), v.end());
      v.erase(std::unique(v.begin(), v.end()), v.end());
    }
    return l;
  }();
  return lists[static_cast<int>(role)];
}

bool supported() {
#if defined(__SANITIZE_ADDRESS__) || defined(__SANITIZE_THREAD__)
  return false;
#elif defined(__has_feature)
#if __has_feature(address_sanitizer) || __has_feature(thread_sanitizer)
  return false;
#else
  return true;
#endif
#else
  return true;
#endif
}

Result<void> install(Role role) {
  std::call_once(g_once, prepare_once);
  struct sigaction sa {};
  sa.sa_sigaction = on_sigsys;
  sa.sa_flags = SA_SIGINFO | SA_RESETHAND | SA_NODEFER;
  if (::sigaction(SIGSYS, &sa, nullptr) != 0) return errno_error("seccomp: SIGSYS handler");

  scmp_filter_ctx ctx = seccomp_init(SCMP_ACT_TRAP);
  if (!ctx) return make_error(ENOMEM, "seccomp: seccomp_init failed");
  struct Release {
    scmp_filter_ctx c;
    ~Release() { seccomp_release(c); }
  } release{ctx};
  for (const std::string& name : allowed(role)) TRY(add(ctx, name, role));
  if (role == Role::Main) {
    // glibc tries clone3 first and falls back to clone, whose flags the rule above can see.
    if (int r = seccomp_rule_add(ctx, SCMP_ACT_ERRNO(ENOSYS), SCMP_SYS(clone3), 0); r != 0)
      return make_error(-r, "seccomp: rule for clone3");
  }
  if (int r = seccomp_load(ctx); r != 0) return make_error(-r, "seccomp: loading the {} filter", to_string(role));
  t_role = static_cast<int>(role);
  return {};
}

}  // namespace evmm::seccomp
