#include "vmm/console.h"

#include <fcntl.h>
#include <unistd.h>

#include <array>
#include <cstring>
#include <vector>

#include "base/discard.h"
#include "base/log.h"

namespace evmm {

Result<ConsoleOutput> ConsoleOutput::open(const SerialConfig& cfg) {
  switch (cfg.kind) {
    case SerialConfig::Kind::Stdio:
      return ConsoleOutput(UniqueFd(), STDOUT_FILENO);
    case SerialConfig::Kind::None:
      return ConsoleOutput(UniqueFd(), -1);
    case SerialConfig::Kind::File: {
      int fd = ::open(cfg.path.c_str(), O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
      if (fd < 0) return errno_error("serial output file {}", cfg.path);
      return ConsoleOutput(UniqueFd(fd), fd);
    }
  }
  return make_error(EINVAL, "serial: unknown output kind");
}

void ConsoleOutput::write(std::span<const uint8_t> bytes) {
  if (fd_ < 0) return;
  while (!bytes.empty()) {
    ssize_t n = ::write(fd_, bytes.data(), bytes.size());
    if (n < 0 && errno == EINTR) continue;
    if (n <= 0) {
      // A closed pipe or a full disk must not stop the guest; the loss is counted.
      if (errors_->fetch_add(1) == 0) LOG_WARN("serial output: write failed: {}", std::strerror(errno));
      return;
    }
    bytes = bytes.subspan(static_cast<size_t>(n));
  }
}

namespace {
// The live TerminalMode, for restore_for_exit(): a signal handler can reach nothing else. One
// process has one controlling terminal, so there is at most one.
std::atomic<const TerminalMode*> g_live_terminal{nullptr};
}  // namespace

TerminalMode::TerminalMode(int fd) : fd_(fd) {
  if (!::isatty(fd) || ::tcgetattr(fd, &saved_) < 0) return;
  termios raw = saved_;
  raw.c_lflag &= ~(ICANON | ECHO | ECHONL | IEXTEN);
  raw.c_iflag &= ~(ICRNL | INLCR | IXON);
  raw.c_cc[VMIN] = 1;
  raw.c_cc[VTIME] = 0;
  changed_ = ::tcsetattr(fd, TCSANOW, &raw) == 0;
  if (changed_) g_live_terminal.store(this);
}

TerminalMode::~TerminalMode() {
  if (!changed_) return;
  g_live_terminal.store(nullptr);
  ::tcsetattr(fd_, TCSANOW, &saved_);
}

void TerminalMode::restore_for_exit() noexcept {
  if (const TerminalMode* t = g_live_terminal.load()) ::tcsetattr(t->fd_, TCSANOW, &t->saved_);
}

class ConsoleInput::Feeder final : public EventSubscriber {
 public:
  Feeder(int fd, Push push, EventFd space) : fd_(fd), push_(std::move(push)), space_(std::move(space)) {}

  void init(EventOps& ops) override {
    if (auto r = ops.add(space_.fd(), EPOLLIN, kSpace); !r) LOG_WARN("serial input: {}", r.error().message());
    if (auto r = ops.add(fd_, EPOLLIN, kInput); r) {
      pollable_ = watching_ = true;
    } else if (r.error().code() == EPERM) {
      // A regular file: epoll refuses it, and it is always readable.
      discard_error(space_.signal(), discarded_, "serial input: signalling its room eventfd");
    } else {
      LOG_WARN("serial input: {}", r.error().message());
      eof_ = true;
    }
  }

  void process(const Event& ev, EventOps& ops) override {
    if (ev.token == kSpace) discard_error(space_.consume(), discarded_, "serial input: reading its room eventfd");
    if (at_ < have_ && !offer()) return unwatch(ops);  // the guest still has no room
    if (eof_) return;
    if (pollable_ && !watching_) {
      // The guest took the last pending byte: watch the input again.
      if (ops.add(fd_, EPOLLIN, kInput)) watching_ = true;
      return;
    }
    if (pollable_ && ev.token != kInput) return;  // room, but nothing to read yet
    ssize_t n = ::read(fd_, buf_.data(), buf_.size());
    if (n < 0 && (errno == EINTR || errno == EAGAIN)) return;
    if (n <= 0) {
      eof_ = true;  // end of input: the guest keeps running, it just gets no more bytes
      return unwatch(ops);
    }
    have_ = static_cast<size_t>(n), at_ = 0;
    if (!offer()) return unwatch(ops);
    // A regular file: the next chunk on the loop's next turn.
    if (!pollable_) discard_error(space_.signal(), discarded_, "serial input: signalling its room eventfd");
  }

  void notify_space() { discard_error(space_.signal(), discarded_, "serial input: signalling its room eventfd"); }
  uint64_t discarded_errors() const { return discarded_.load(std::memory_order_relaxed); }

 private:
  // The tokens of the two fds: the guest made room, or the input is readable.
  static constexpr uint64_t kSpace = 0, kInput = 1;

  // Offers the pending bytes; true when the sink took them all.
  bool offer() {
    at_ += push_(std::span<const uint8_t>(buf_.data() + at_, have_ - at_));
    if (at_ < have_) return false;
    at_ = have_ = 0;
    return true;
  }
  // Stops watching the input while bytes wait for room (or for good, at EOF).
  void unwatch(EventOps& ops) {
    if (watching_) discard_error(ops.remove(fd_), discarded_, "serial input: unwatching fd {}", fd_);
    watching_ = false;
  }

  int fd_;
  Push push_;
  EventFd space_;
  std::array<uint8_t, 4096> buf_{};
  size_t at_ = 0, have_ = 0;  // pending bytes are buf_[at_, have_)
  bool pollable_ = false;     // epoll accepts fd_ (not a regular file)
  bool watching_ = false;     // fd_ is in the loop's epoll set
  bool eof_ = false;
  std::atomic<uint64_t> discarded_{0};
};

Result<std::unique_ptr<ConsoleInput>> ConsoleInput::attach(EventLoop& loop, int fd, Push push) {
  auto feeder = std::make_shared<Feeder>(fd, std::move(push), TRY(EventFd::create()));
  auto id = TRY(loop.add(feeder));
  return std::unique_ptr<ConsoleInput>(new ConsoleInput(loop, std::move(feeder), id));
}

ConsoleInput::~ConsoleInput() {
  if (auto r = loop_.remove(id_); !r) LOG_WARN("serial input: {}", r.error().message());
}

void ConsoleInput::notify_space() { feeder_->notify_space(); }

uint64_t ConsoleInput::discarded_errors() const { return feeder_->discarded_errors(); }

}  // namespace evmm
