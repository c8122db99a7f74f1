#include "vmm/console.h"

#include <fcntl.h>
#include <poll.h>
#include <unistd.h>

#include <cstring>
#include <vector>

#include "base/log.h"
#include "vcpu/kick.h"

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

Result<std::unique_ptr<ConsoleInput>> ConsoleInput::start(int fd, Push push) {
  auto stop = TRY(EventFd::create());
  auto space = TRY(EventFd::create());
  std::unique_ptr<ConsoleInput> in(new ConsoleInput(fd, std::move(push), std::move(stop), std::move(space)));
  in->thread_ = std::thread([p = in.get()] { p->loop(); });
  return in;
}

ConsoleInput::~ConsoleInput() {
  (void)stop_.signal();
  if (thread_.joinable()) thread_.join();
}

void ConsoleInput::notify_space() { (void)space_.signal(); }

void ConsoleInput::loop() {
  block_kick_signal();
  std::vector<uint8_t> buf(4096);
  size_t have = 0, at = 0;  // pending bytes are buf[at, have)
  bool eof = false;
  for (;;) {
    // Offer what is pending; whatever the device did not take waits for a space notification.
    if (at < have) {
      size_t n = push_(std::span<const uint8_t>(buf.data() + at, have - at));
      at += n;
      if (at == have) at = have = 0;
    }
    pollfd fds[3] = {{stop_.fd(), POLLIN, 0}, {space_.fd(), POLLIN, 0}, {fd_, POLLIN, 0}};
    // Read more only when nothing is pending, so input is never reordered or dropped.
    nfds_t nfds = (have == 0 && !eof) ? 3 : 2;
    if (::poll(fds, nfds, -1) < 0) {
      if (errno == EINTR) continue;
      LOG_WARN("serial input: poll: {}", std::strerror(errno));
      return;
    }
    if (fds[0].revents) return;
    if (fds[1].revents) (void)space_.consume();
    if (nfds == 3 && fds[2].revents) {
      ssize_t n = ::read(fd_, buf.data(), buf.size());
      if (n > 0) {
        have = static_cast<size_t>(n);
        at = 0;
      } else if (n == 0 || (errno != EINTR && errno != EAGAIN)) {
        eof = true;  // end of input: the guest keeps running, it just gets no more bytes
      }
    }
  }
}

}  // namespace evmm
