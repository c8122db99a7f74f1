// The host side of the serial console: where guest output goes, and how stdin reaches the UART.
#pragma once

#include <termios.h>

#include <atomic>
#include <functional>
#include <span>
#include <thread>

#include "base/eventfd.h"
#include "base/fd.h"
#include "base/result.h"
#include "vmm/config.h"

namespace evmm {

// Writes guest output to stdout, a file, or nowhere. Thread-safe: each chunk is one write(2).
class ConsoleOutput {
 public:
  static Result<ConsoleOutput> open(const SerialConfig& cfg);
  void write(std::span<const uint8_t> bytes);
  uint64_t errors() const { return errors_->load(); }

 private:
  ConsoleOutput(UniqueFd owned, int fd) : owned_(std::move(owned)), fd_(fd) {}
  UniqueFd owned_;  // the file, when output goes to one
  int fd_;          // -1 for none
  std::unique_ptr<std::atomic<uint64_t>> errors_ = std::make_unique<std::atomic<uint64_t>>(0);
};

// Puts a terminal in character-at-a-time mode without echo for as long as it lives, so keys reach
// the guest as typed; ISIG stays on so Ctrl-C still stops evmm. No-op when fd is not a terminal.
class TerminalMode {
 public:
  explicit TerminalMode(int fd);
  TerminalMode(const TerminalMode&) = delete;
  TerminalMode& operator=(const TerminalMode&) = delete;
  ~TerminalMode();

 private:
  int fd_;
  bool changed_ = false;
  termios saved_{};
};

// Feeds bytes from an input fd (stdin, a pipe or a terminal) to a sink that may take fewer than
// offered: the rest waits until the sink says it has room, so no byte is dropped.
class ConsoleInput {
 public:
  using Push = std::function<size_t(std::span<const uint8_t>)>;
  static Result<std::unique_ptr<ConsoleInput>> start(int fd, Push push);
  ~ConsoleInput();

  // Called by the device when the guest made room (any thread).
  void notify_space();

 private:
  ConsoleInput(int fd, Push push, EventFd stop, EventFd space)
      : fd_(fd), push_(std::move(push)), stop_(std::move(stop)), space_(std::move(space)) {}
  void loop();

  int fd_;
  Push push_;
  EventFd stop_;
  EventFd space_;
  std::thread thread_;
};

}  // namespace evmm
