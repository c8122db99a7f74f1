// The seccomp filters on real threads: what each role may do still works, and a forbidden call kills
// the process with one line naming the thread's role and the system call. Each case runs in a death
// test's child, so the filters never reach the test binary itself.
#include "sandbox/seccomp.h"

#include <gtest/gtest.h>
#include <fcntl.h>
#include <sys/socket.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <csignal>
#include <cstdlib>
#include <thread>

#include "base/eventfd.h"
#include "event/event_loop.h"

namespace evmm::seccomp {
namespace {

#define SKIP_WITHOUT_SECCOMP() \
  if (!supported()) GTEST_SKIP() << "seccomp filters are off in sanitizer builds"

class SeccompTest : public ::testing::Test {
 protected:
  void SetUp() override { GTEST_FLAG_SET(death_test_style, "threadsafe"); }
};

bool allows(Role role, const std::string& name) {
  const auto& l = allowed(role);
  return std::find(l.begin(), l.end(), name) != l.end();
}

TEST(SeccompLists, NoRoleMayExecuteOpenSocketsOrTrace) {
  for (Role r : {Role::Main, Role::Vcpu, Role::Device, Role::Debugger, Role::Backend, Role::Api})
    for (const char* name : {"execve", "execveat", "ptrace", "fork", "vfork", "kill",
                             "process_vm_writev", "mount", "bpf", "listen"})
      EXPECT_FALSE(allows(r, name)) << to_string(r) << " allows " << name;
  // Only the API thread accepts, on the socket main bound and listened on before any filter.
  for (Role r : {Role::Main, Role::Vcpu, Role::Device, Role::Debugger, Role::Backend})
    EXPECT_FALSE(allows(r, "accept4")) << to_string(r);
  // Only the main thread makes sockets: the --net socket= backend (AF_UNIX only, checked below). A
  // vhost-user backend accepts its one connection before its filter.
  for (Role r : {Role::Vcpu, Role::Device, Role::Debugger, Role::Backend, Role::Api})
    for (const char* name : {"socket", "connect", "bind"}) EXPECT_FALSE(allows(r, name)) << to_string(r) << " allows " << name;
}

TEST(SeccompLists, OnlyTheMainThreadMakesAnIoUring) {
  // virtio-blk's ring is made with the device, on the main thread; the loop only enters it.
  EXPECT_TRUE(allows(Role::Main, "io_uring_setup"));
  EXPECT_TRUE(allows(Role::Device, "io_uring_enter"));
  for (Role r : {Role::Vcpu, Role::Device, Role::Debugger, Role::Backend, Role::Api})
    for (const char* name : {"io_uring_setup", "io_uring_register"})
      EXPECT_FALSE(allows(r, name)) << to_string(r) << " allows " << name;
}

TEST(SeccompLists, OnlyTheMainThreadOpensFilesOrStartsThreads) {
  EXPECT_TRUE(allows(Role::Main, "openat"));
  EXPECT_TRUE(allows(Role::Main, "clone"));
  for (Role r : {Role::Vcpu, Role::Device, Role::Debugger, Role::Backend, Role::Api})
    for (const char* name : {"openat", "clone", "memfd_create", "eventfd2", "seccomp", "prctl"})
      EXPECT_FALSE(allows(r, name)) << to_string(r) << " allows " << name;
  // The main thread's filter is inherited by every thread, so it holds what they need.
  for (Role r : {Role::Vcpu, Role::Device, Role::Debugger})
    for (const auto& name : allowed(r)) EXPECT_TRUE(allows(Role::Main, name)) << name;
}

// The API thread answers on connections it accepts and reaches nothing else: no socket of its own,
// no files (the socket's removal is main's, at exit), no KVM of its own beyond the vCPU kicks.
TEST(SeccompLists, TheApiThreadAcceptsAndAnswersAndNothingMore) {
  for (const char* name : {"accept4", "getsockopt", "recvfrom", "sendto", "poll", "futex", "tgkill"})
    EXPECT_TRUE(allows(Role::Api, name)) << name;
  for (const char* name : {"socket", "connect", "bind", "listen", "unlink", "openat", "recvmsg", "sendmsg", "mmap_pgoff"})
    EXPECT_FALSE(allows(Role::Api, name)) << name;
  EXPECT_TRUE(allows(Role::Main, "unlink"));
}

// A vhost-user backend holds what a device loop holds, and takes messages with fds on its connection.
TEST(SeccompLists, ABackendIsADeviceLoopThatTakesFdsOnItsConnection) {
  for (const auto& name : allowed(Role::Device)) EXPECT_TRUE(allows(Role::Backend, name)) << name;
  for (const char* name : {"recvmsg", "sendto", "mmap", "munmap"}) EXPECT_TRUE(allows(Role::Backend, name)) << name;
  EXPECT_FALSE(allows(Role::Device, "recvmsg"));
  // virtio-rng draws its bytes on the device loop, in process or out (it was missing, and the first
  // run of `evmm device rng` under its filter died of it).
  EXPECT_TRUE(allows(Role::Device, "getrandom"));
}

// A vhost-user frontend's vCPU thread sends the rings at DRIVER_OK on the connection main made; it
// makes none of its own, and the device loop (which only reads the call eventfds) gets nothing.
TEST(SeccompLists, AVcpuTalksToItsVhostUserBackendOnlyOnAnExistingConnection) {
  for (const char* name : {"sendmsg", "recvmsg"}) {
    EXPECT_TRUE(allows(Role::Vcpu, name)) << name;
    EXPECT_TRUE(allows(Role::Main, name)) << name;
    EXPECT_FALSE(allows(Role::Device, name)) << name;
  }
  for (const char* name : {"socket", "connect", "accept4", "setsockopt"}) EXPECT_FALSE(allows(Role::Vcpu, name)) << name;
}

// A device thread, as the platform starts it: an event loop whose setup installs the device filter.
// Its subscriber then makes a call devices never need.
class ForbiddenCall final : public EventSubscriber {
 public:
  explicit ForbiddenCall(const EventFd& fd) : fd_(fd) {}
  void init(EventOps& ops) override { (void)ops.add(fd_.fd(), EPOLLIN, 0); }
  void process(const Event&, EventOps&) override {
    (void)fd_.consume();
    ::socket(AF_INET, SOCK_STREAM, 0);
  }

 private:
  const EventFd& fd_;
};

void device_thread_opens_a_socket() {
  auto loop = EventLoop::create();
  auto fd = EventFd::create();
  if (!loop || !fd) std::_Exit(3);
  (void)(*loop)->add(std::make_shared<ForbiddenCall>(*fd));
  if (!(*loop)->start([] { return install(Role::Device); })) std::_Exit(4);
  (void)fd->signal();
  std::this_thread::sleep_for(std::chrono::seconds(10));
  std::_Exit(0);  // not reached: the call kills the process
}

TEST_F(SeccompTest, AForbiddenCallFromADeviceThreadKillsWithItsName) {
  SKIP_WITHOUT_SECCOMP();
  EXPECT_EXIT(device_thread_opens_a_socket(), ::testing::KilledBySignal(SIGSYS),
              "evmm: seccomp: a device thread made system call socket \\(41\\), which its filter forbids");
}

// The main thread's socket rule: a Unix datagram socket for --net socket= works, anything else kills.
void main_thread_makes_sockets() {
  std::thread t([] {
    if (!install(Role::Main)) std::_Exit(3);
    int fd = ::socket(AF_UNIX, SOCK_DGRAM | SOCK_CLOEXEC, 0);
    if (fd < 0) std::_Exit(4);
    ::close(fd);
    ::socket(AF_INET, SOCK_DGRAM, 0);
  });
  t.join();
  std::_Exit(0);
}

TEST_F(SeccompTest, MainFilterAllowsUnixSocketsOnly) {
  SKIP_WITHOUT_SECCOMP();
  EXPECT_EXIT(main_thread_makes_sockets(), ::testing::KilledBySignal(SIGSYS),
              "a main thread made system call socket \\(41\\)");
}

// What a vCPU thread does works under its filter; opening a file or making an fd does not.
void vcpu_thread_makes_an_eventfd() {
  std::thread t([] {
    if (!install(Role::Vcpu)) std::_Exit(3);
    (void)EventFd::create();  // eventfd2: only the main thread makes fds
  });
  t.join();
  std::_Exit(0);
}

TEST_F(SeccompTest, VcpuFilterAllowsItsCallsAndKillsOnOpen) {
  SKIP_WITHOUT_SECCOMP();
  EXPECT_EXIT(vcpu_thread_makes_an_eventfd(), ::testing::KilledBySignal(SIGSYS), "a vcpu thread made system call eventfd2");
  EXPECT_EXIT(
      [] {
        std::thread t([] {
          if (!install(Role::Vcpu)) std::_Exit(3);
          std::atomic<int> x{0};
          x.fetch_add(1);
          timespec ts{0, 1000};
          ::nanosleep(&ts, nullptr);
          [[maybe_unused]] auto n = ::write(STDERR_FILENO, "vcpu ok\n", 8);
          ::open("/etc/hostname", O_RDONLY);
        });
        t.join();
        std::_Exit(0);
      }(),
      ::testing::KilledBySignal(SIGSYS), "vcpu ok\n(.|\n)*a vcpu thread made system call openat");
}

// The main thread starts threads (clone3 answers ENOSYS, glibc falls back to clone with
// CLONE_THREAD) and they install their own filters; it cannot fork.
TEST_F(SeccompTest, MainFilterStartsFilteredThreadsButCannotFork) {
  SKIP_WITHOUT_SECCOMP();
  EXPECT_EXIT(
      [] {
        if (!install(Role::Main)) std::_Exit(3);
        bool ok = false;
        std::thread t([&ok] { ok = install(Role::Device).has_value(); });
        t.join();
        if (!ok) std::_Exit(4);
        [[maybe_unused]] auto n = ::write(STDERR_FILENO, "thread ok\n", 10);
        ::syscall(SYS_clone, SIGCHLD, 0, 0, 0, 0);  // fork
        std::_Exit(0);
      }(),
      ::testing::KilledBySignal(SIGSYS), "thread ok\n(.|\n)*a main thread made system call clone \\(56\\)");
}

}  // namespace
}  // namespace evmm::seccomp
