// The host side of the serial console: where guest output goes, and how stdin reaches the UART.
#pragma once

#include <termios.h>

#include <atomic>
#include <functional>
#include <span>

#include "base/eventfd.h"
#include "base/fd.h"
#include "base/result.h"
#include "event/event_loop.h"
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

  // Puts back the terminal settings of the TerminalMode that lives now, if any, from a signal
  // handler that is about to _exit (async-signal-safe: only tcsetattr).
  static void restore_for_exit() noexcept;

 private:
  int fd_;
  bool changed_ = false;
  termios saved_{};
};

// Feeds bytes from an input fd (stdin, a pipe, a terminal or a regular file) to a sink that may take
// fewer than offered: the rest waits until the sink says it has room, so no byte is dropped or
// reordered. Runs on the device EventLoop; while bytes wait, the input fd is not watched, so a full
// UART throttles the reader instead of filling memory (at most one 4 KiB chunk is held). Regular
// files, which epoll refuses, are read one chunk per loop turn.
class ConsoleInput {
 public:
  using Push = std::function<size_t(std::span<const uint8_t>)>;
  // loop must outlive the returned object; push is called on the loop's thread.
  static Result<std::unique_ptr<ConsoleInput>> attach(EventLoop& loop, int fd, Push push);
  // Leaves the loop; once it returns, push is never called again.
  ~ConsoleInput();

  // Called by the device when the guest made room (any thread).
  void notify_space();
  // Failures logged and ignored on the loop's thread (base/discard.h).
  uint64_t discarded_errors() const;

 private:
  class Feeder;
  ConsoleInput(EventLoop& loop, std::shared_ptr<Feeder> feeder, EventLoop::SubscriberId id)
      : loop_(loop), feeder_(std::move(feeder)), id_(id) {}

  EventLoop& loop_;
  std::shared_ptr<Feeder> feeder_;
  EventLoop::SubscriberId id_;
};

}  // namespace evmm
