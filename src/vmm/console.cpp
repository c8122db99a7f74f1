#include "vmm/console.h"

#include <fcntl.h>
#include <unistd.h>

#include <array>
#include <cstring>
#include <vector>

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

TerminalMode::TerminalMode(int fd) : fd_(fd) {
  if (!::isatty(fd) || ::tcgetattr(fd, &saved_) < 0) return;
  termios raw = saved_;
  raw.c_lflag &= ~(ICANON | ECHO | ECHONL | IEXTEN);
  raw.c_iflag &= ~(ICRNL | INLCR | IXON);
  raw.c_cc[VMIN] = 1;
  raw.c_cc[VTIME] = 0;
  changed_ = ::tcsetattr(fd, TCSANOW, &raw) == 0;
}

TerminalMode::~TerminalMode() {
  if (changed_) ::tcsetattr(fd_, TCSANOW, &saved_);
}

class ConsoleInput::Feeder final : public EventSubscriber {
 public:
  Feeder(int fd, Push push, EventFd space) : fd_(fd), push_(std::move(push)), space_(std::move(space)) {}

  void init(EventOps& ops) override {
    if (auto r = ops.add(space_.fd(), EPOLLIN, kSpace); !r) LOG_WARN("serial input: {}", r.error().message());
    if (auto r = ops.add(fd_, EPOLLIN, kInput); r) {
      pollable_ = watching_ = true;
    } else if (r.error().code() == EPERM) {
      (void)space_.signal();  // a regular file: epoll refuses it, and it is always readable
    } else {
      LOG_WARN("serial input: {}", r.error().message());
      eof_ = true;
    }
  }

  void process(const Event& ev, EventOps& ops) override {
    if (ev.token == kSpace) (void)space_.consume();
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
    if (!pollable_) (void)space_.signal();  // a regular file: the next chunk on the loop's next turn
  }

  void notify_space() { (void)space_.signal(); }

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
    if (watching_) (void)ops.remove(fd_);
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

}  // namespace evmm
