// A VMM run as a child process whose output lines are seen as they arrive, each with the time since
// exec: what the blk and Linux boot benchmarks time from the host side.
#pragma once

#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <spawn.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include <chrono>
#include <functional>
#include <string>
#include <thread>
#include <vector>

extern char** environ;

namespace evmm::bench {

struct ChildRun {
  int status = -1;         // exit status, 128 + signal when killed, -1 when it could not start
  bool stopped = false;    // on_line asked to stop (the child was killed)
  bool timed_out = false;
  double wall_ms = 0;      // exec to exit (or to the stop)
  std::string out;         // stdout and stderr, interleaved as they arrived
};

// Runs argv with stdout and stderr on one pipe. on_line(line, ms since exec) returns true to stop the
// child there (SIGKILL). The deadline kills it too.
inline ChildRun run_child(const std::vector<std::string>& argv, const std::function<bool(const std::string&, double)>& on_line,
                          std::chrono::seconds deadline) {
  using Clock = std::chrono::steady_clock;
  ChildRun r;
  int p[2];
  if (pipe2(p, O_CLOEXEC) < 0) return r;
  posix_spawn_file_actions_t fa;
  posix_spawn_file_actions_init(&fa);
  posix_spawn_file_actions_adddup2(&fa, p[1], 1);
  posix_spawn_file_actions_adddup2(&fa, p[1], 2);
  posix_spawn_file_actions_addopen(&fa, 0, "/dev/null", O_RDONLY, 0);
  std::vector<char*> args;
  for (auto& a : argv) args.push_back(const_cast<char*>(a.c_str()));
  args.push_back(nullptr);
  pid_t pid;
  auto t0 = Clock::now();
  auto ms = [&] { return std::chrono::duration<double, std::milli>(Clock::now() - t0).count(); };
  int rc = posix_spawn(&pid, args[0], &fa, nullptr, args.data(), environ);
  posix_spawn_file_actions_destroy(&fa);
  close(p[1]);
  if (rc != 0) {
    close(p[0]);
    r.out = "cannot start " + argv[0];
    return r;
  }
  std::string line;
  while (!r.stopped) {
    if (Clock::now() - t0 > deadline) {
      r.timed_out = true;
      break;
    }
    pollfd pfd{p[0], POLLIN, 0};
    if (poll(&pfd, 1, 100) <= 0) continue;
    char buf[4096];
    ssize_t n = read(p[0], buf, sizeof buf);
    if (n <= 0) break;  // every writer closed: the child is gone
    double now = ms();
    r.out.append(buf, static_cast<size_t>(n));
    for (ssize_t i = 0; i < n && !r.stopped; i++) {
      if (buf[i] != '\n') {
        line += buf[i];
        continue;
      }
      r.stopped = on_line(line, now);
      line.clear();
    }
  }
  if (r.stopped || r.timed_out) kill(pid, SIGKILL);
  int st = 0;
  waitpid(pid, &st, 0);
  r.wall_ms = ms();
  close(p[0]);
  r.status = WIFEXITED(st) ? WEXITSTATUS(st) : 128 + WTERMSIG(st);
  return r;
}

// A server the benchmark talks to over a Unix socket (a vhost-user backend): started with its stdout
// on /dev/null, ready once path is a socket (up to 10 s), SIGTERMed and reaped when this goes.
class SocketServer {
 public:
  SocketServer(const std::vector<std::string>& argv, const std::string& path) {
    ::unlink(path.c_str());
    std::vector<char*> args;
    for (auto& a : argv) args.push_back(const_cast<char*>(a.c_str()));
    args.push_back(nullptr);
    posix_spawn_file_actions_t fa;
    posix_spawn_file_actions_init(&fa);
    posix_spawn_file_actions_addopen(&fa, 1, "/dev/null", O_WRONLY, 0);
    if (posix_spawn(&pid_, args[0], &fa, nullptr, args.data(), environ) != 0) pid_ = -1;
    posix_spawn_file_actions_destroy(&fa);
    for (int i = 0; pid_ > 0 && i < 400 && !ready_; ++i) {
      struct stat st;
      ready_ = ::stat(path.c_str(), &st) == 0 && S_ISSOCK(st.st_mode);
      if (!ready_) std::this_thread::sleep_for(std::chrono::milliseconds(25));
    }
  }
  ~SocketServer() {
    if (pid_ <= 0) return;
    ::kill(pid_, SIGTERM);
    int st;
    ::waitpid(pid_, &st, 0);
  }
  SocketServer(const SocketServer&) = delete;
  SocketServer& operator=(const SocketServer&) = delete;
  bool ready() const { return ready_; }

 private:
  pid_t pid_ = -1;
  bool ready_ = false;
};

}  // namespace evmm::bench
