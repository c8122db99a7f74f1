#include "vmm/run_loop.h"

#include <poll.h>
#include <signal.h>
#include <sys/signalfd.h>
#include <unistd.h>

#include <cstdio>
#include <cstring>

#include "vcpu/assist.h"
#include "vmm/console.h"
#include "vmm/exit_status.h"

namespace evmm {

void print_stats(const Vm& vm) {
  VmStats s = vm.stats();
  std::string assists;
  for (size_t i = 0; i < s.assists.size(); ++i)
    if (s.assists[i]) assists += fmt::format(" {}={}", to_string(static_cast<AssistKind>(i)), s.assists[i]);
  std::string faults;
  for (size_t i = 0; i < s.faults.size(); ++i)
    if (s.faults[i]) faults += fmt::format(" #{}={}", x86::to_string(static_cast<x86::Vector>(i)), s.faults[i]);
  std::fprintf(stderr,
               "evmm: stats: pio_exits=%lu mmio_exits=%lu unclaimed_pio=%lu unclaimed_mmio=%lu assists:%s "
               "injected_faults:%s discarded_errors=%lu%s\n",
               s.pio_exits, s.mmio_exits, s.unclaimed_pio, s.unclaimed_mmio, assists.empty() ? " none" : assists.c_str(),
               faults.empty() ? " none" : faults.c_str(), s.discarded_errors, s.virtio.c_str());
}

namespace {

// While a VM is being built, SIGINT and SIGTERM end evmm from this handler: start-up may wait in a
// call nothing else would interrupt (opening a FIFO given as --serial file:, a slow disk), and a
// handler that exits needs no cooperation from that call. No guest has run yet, so there is no
// output to flush and nothing to tear down that the kernel does not.
extern "C" void exit_during_startup(int sig) {
  TerminalMode::restore_for_exit();
  // SIGINT or SIGTERM: one or two digits, formatted without snprintf (not async-signal-safe).
  char msg[] = "evmm: stopped by signal ?? during start-up\n";
  char* digits = std::strchr(msg, '?');
  size_t len = sizeof msg - 1;
  if (sig >= 10) {
    digits[0] = static_cast<char>('0' + sig / 10 % 10);
    digits[1] = static_cast<char>('0' + sig % 10);
  } else {
    digits[0] = static_cast<char>('0' + sig);
    std::memmove(digits + 1, digits + 2, static_cast<size_t>(msg + len - (digits + 2)));
    --len;
  }
  ssize_t ignored = ::write(STDERR_FILENO, msg, len);
  (void)ignored;  // nothing can be done about a failed write on the way out
  ::_exit(exit_status::kInterrupted);
}

}  // namespace

// Builds a VM with SIGINT and SIGTERM unblocked on the main thread only (every other thread of
// evmm keeps them blocked, so the kernel delivers them here). A signal either arrives while they
// are unblocked and ends evmm at once, or after they are blocked again and waits in the signalfd
// that run_once reads: none is lost between the two.
tl::expected<std::unique_ptr<Vm>, VmOutcome> create_vm_interruptibly(const System& kvm, const VmConfig& cfg) {
  sigset_t stop;
  sigemptyset(&stop);
  sigaddset(&stop, SIGINT);
  sigaddset(&stop, SIGTERM);
  pthread_sigmask(SIG_UNBLOCK, &stop, nullptr);
  auto vm = Vm::create(kvm, cfg);
  pthread_sigmask(SIG_BLOCK, &stop, nullptr);
  return vm;
}

// Runs one VM until it stops, turning SIGINT and SIGTERM into a clean stop, SIGUSR1 into the
// platform's wake button (it ends ACPI S3), and SIGUSR2 into every vCPU's register dump on stderr
// (and, with --stats, the counters so far: a test's hang guard sends SIGUSR2 before it kills evmm).
tl::expected<std::unique_ptr<Vm>, VmOutcome> start_vm(const System& kvm, const VmConfig& cfg) {
  auto vm = create_vm_interruptibly(kvm, cfg);
  if (vm)
    if (auto r = (*vm)->start(); !r) return tl::unexpected(VmOutcome{VmOutcome::Kind::HostError, exit_status::kHost, r.error().message()});
  return vm;
}

int report_outcome(const VmOutcome& out) {
  const bool quiet = out.kind == VmOutcome::Kind::PowerOff || out.kind == VmOutcome::Kind::DebugExit;
  if (!quiet && !out.message.empty()) fail_line(out.message);
  if (!out.details.empty()) std::fputs(out.details.c_str(), stderr);
  return out.exit_status;
}

VmOutcome run_once(Vm& vm, int sigfd, bool stats) {
  pollfd fds[2] = {{vm.stopped_fd(), POLLIN, 0}, {sigfd, POLLIN, 0}};
  for (;;) {
    if (::poll(fds, 2, -1) < 0 && errno != EINTR) break;
    if (fds[0].revents) break;
    if (fds[1].revents) {
      signalfd_siginfo si;
      if (::read(sigfd, &si, sizeof si) != sizeof si) continue;
      if (si.ssi_signo == SIGUSR1) {
        vm.wake();
      } else if (si.ssi_signo == SIGUSR2) {
        std::string dump = "evmm: register dump (SIGUSR2)\n" + vm.dump_vcpus();
        std::fputs(dump.c_str(), stderr);
        if (stats) print_stats(vm);
      } else {
        vm.interrupt(fmt::format("stopped by signal {}", si.ssi_signo));
      }
    }
  }
  return vm.wait();
}

void fail_line(const std::string& msg) { std::fprintf(stderr, "evmm: %s\n", msg.c_str()); }

Result<UniqueFd> take_signals() {
  sigset_t set;
  sigemptyset(&set);
  sigaddset(&set, SIGINT);
  sigaddset(&set, SIGTERM);
  sigaddset(&set, SIGUSR1);
  sigaddset(&set, SIGUSR2);
  pthread_sigmask(SIG_BLOCK, &set, nullptr);  // before any thread starts, so all inherit it
  signal(SIGPIPE, SIG_IGN);                  // a closed output pipe is an error to count, not a death
  int sigfd = ::signalfd(-1, &set, SFD_CLOEXEC);
  if (sigfd < 0) return errno_error("signalfd");
  struct sigaction sa{};
  sa.sa_handler = exit_during_startup;
  sigfillset(&sa.sa_mask);
  sigaction(SIGINT, &sa, nullptr);
  sigaction(SIGTERM, &sa, nullptr);
  return UniqueFd(sigfd);
}

}  // namespace evmm
