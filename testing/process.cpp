#include "testing/process.h"

#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>
#include <thread>

namespace evmm::testing {

ProcessResult run_process(const std::vector<std::string>& argv, const ProcessOptions& opts) {
  ProcessResult res;
  int in[2], out[2], err[2];
  if (::pipe2(in, O_CLOEXEC) || ::pipe2(out, O_CLOEXEC) || ::pipe2(err, O_CLOEXEC)) return res;
  pid_t pid = ::fork();
  if (pid == 0) {
    int file = opts.stdin_file.empty() ? -1 : ::open(opts.stdin_file.c_str(), O_RDONLY);
    ::dup2(file >= 0 ? file : in[0], 0);
    ::dup2(out[1], 1);
    ::dup2(err[1], 2);
    // The test runner may block signals; the child starts with a clean mask.
    sigset_t none;
    sigemptyset(&none);
    sigprocmask(SIG_SETMASK, &none, nullptr);
    std::vector<char*> args;
    for (auto& a : argv) args.push_back(const_cast<char*>(a.c_str()));
    args.push_back(nullptr);
    ::execv(args[0], args.data());
    _exit(127);
  }
  ::close(in[0]);
  ::close(out[1]);
  ::close(err[1]);
  std::thread watcher;
  if (opts.while_running) watcher = std::thread(opts.while_running, pid);
  ::signal(SIGPIPE, SIG_IGN);
  size_t written = 0;
  int in_fd = in[1];
  if ((opts.stdin_data.empty() && opts.close_stdin) || !opts.stdin_file.empty()) {
    ::close(in_fd);
    in_fd = -1;
  }
  auto deadline = std::chrono::steady_clock::now() + opts.timeout;
  bool killed_hard = false;
  int open_fds = 2;
  while (open_fds > 0) {
    bool feeding = in_fd >= 0 && written < opts.stdin_data.size();
    pollfd fds[3] = {{out[0], POLLIN, 0}, {err[0], POLLIN, 0}, {feeding ? in_fd : -1, POLLOUT, 0}};
    auto left = std::chrono::duration_cast<std::chrono::milliseconds>(deadline - std::chrono::steady_clock::now());
    int r = ::poll(fds, 3, std::max<int>(0, static_cast<int>(left.count())));
    if (r < 0 && errno == EINTR) continue;
    if (r == 0) {
      if (!res.timed_out) {
        res.timed_out = true;
        ::kill(pid, opts.timeout_signal);
        deadline = std::chrono::steady_clock::now() + std::chrono::seconds(5);
      } else if (!killed_hard) {
        killed_hard = true;
        ::kill(pid, SIGKILL);
        deadline = std::chrono::steady_clock::now() + std::chrono::seconds(5);
      } else {
        break;
      }
      continue;
    }
    for (int i = 0; i < 2; ++i) {
      if (fds[i].fd < 0 || !(fds[i].revents & (POLLIN | POLLHUP | POLLERR))) continue;
      char buf[4096];
      ssize_t n = ::read(fds[i].fd, buf, sizeof buf);
      if (n > 0) {
        (i == 0 ? res.out : res.err).append(buf, static_cast<size_t>(n));
      } else if (n == 0 || errno != EINTR) {
        ::close(fds[i].fd);
        (i == 0 ? out[0] : err[0]) = -1;
        --open_fds;
      }
    }
    if (feeding && (fds[2].revents & (POLLOUT | POLLERR | POLLHUP))) {
      ssize_t n = ::write(in_fd, opts.stdin_data.data() + written, opts.stdin_data.size() - written);
      if (n > 0) written += static_cast<size_t>(n);
      if (n < 0 || written == opts.stdin_data.size()) {
        if (opts.close_stdin || n < 0) {
          ::close(in_fd);
          in_fd = -1;
        }
      }
    }
  }
  if (in_fd >= 0) ::close(in_fd);
  if (out[0] >= 0) ::close(out[0]);
  if (err[0] >= 0) ::close(err[0]);
  // The child may outlive its pipes; the deadline still holds.
  int status = 0;
  while (::waitpid(pid, &status, WNOHANG) == 0) {
    if (std::chrono::steady_clock::now() > deadline) {
      res.timed_out = true;
      ::kill(pid, SIGKILL);
      ::waitpid(pid, &status, 0);
      break;
    }
    ::usleep(1000);
  }
  if (watcher.joinable()) watcher.join();
  res.exit_status = WIFEXITED(status) ? WEXITSTATUS(status) : 128 + WTERMSIG(status);
  return res;
}

}  // namespace evmm::testing
