// The GDB remote protocol's commands (gdb manual, "Packets"), over a DebugTarget: pure, so that a
// fake target tests it. The server (debug/gdb_server.h) does the I/O and framing.
//
// All-stop mode only: gdb sees one thread per vCPU (ids 1..N), and every thread stops when one
// does. Resuming commands (c, s, vCont) give no reply at once: the server sends the stop reply
// (stop_reply()) when the target stops. Errors are "Exx" with the errno as xx: E14 (EFAULT) for
// memory that is not mapped, E22 (EINVAL) for a malformed command, E28 (ENOSPC) when the debug
// registers are all taken. Commands the stub does not know get the empty reply, as the protocol asks.
#pragma once

#include <optional>
#include <string>
#include <string_view>

#include "debug/debug_target.h"

namespace evmm::gdb {

class Stub {
 public:
  explicit Stub(DebugTarget& target) : target_(target) {}

  // The reply to one packet's data, or nullopt when the target now runs (or was killed).
  std::optional<std::string> handle(std::string_view packet);
  // T05thread:<id>;<reason> for a stop; the stopped thread becomes the selected one.
  std::string stop_reply(const StopEvent& e);

  bool killed() const { return killed_; }
  bool detached() const { return detached_; }
  uint64_t malformed() const { return malformed_; }

 private:
  std::string query(std::string_view q);
  std::string set_thread(std::string_view args);
  std::string read_registers();
  std::string write_registers(std::string_view hex);
  std::string read_register(std::string_view args);
  std::string write_register(std::string_view args);
  std::string read_memory(std::string_view args);
  std::string write_memory(std::string_view args, bool binary);
  std::string breakpoint(std::string_view args, bool insert);
  std::optional<std::string> resume_all(ResumeAction action, std::string_view addr);
  std::optional<std::string> vcont(std::string_view args);
  // A gdb thread id: 1..N, 0 (any) or -1 (all); nullopt if malformed or out of range.
  std::optional<int> parse_thread(std::string_view id) const;
  std::string error(int err);
  std::string bad();

  DebugTarget& target_;
  unsigned g_thread_ = 0;  // 'Hg': registers and memory
  unsigned c_thread_ = 0;  // 'Hc': which thread 's' steps
  size_t thread_cursor_ = 0;
  // What '?' answers: the last stop, at first the one the VM starts in (a SIGTRAP, as for QEMU's -S).
  StopEvent last_stop_{0, StopEvent::Reason::Trap};
  bool killed_ = false, detached_ = false;
  uint64_t malformed_ = 0;
};

// The 536-byte 'g' packet layout of GdbRegisters, and back (the G packet: nullopt if too short).
std::string encode_registers(const GdbRegisters& r);
std::optional<GdbRegisters> decode_registers(std::string_view hex, const GdbRegisters& current);

}  // namespace evmm::gdb
