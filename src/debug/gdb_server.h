// evmm's GDB remote stub on a socket: where gdb connects (--gdb PATH|PORT) and the thread that
// speaks the protocol with it (debug/gdb_packet.h framing, debug/gdb_stub.h commands) over a
// VcpuDebugger.
//
// Rules:
//   - An endpoint that is all digits is a TCP port on 127.0.0.1, and only there: a debugger can
//     read and write all of the guest, so evmm never listens on another address. Anything else is
//     the path of a Unix socket, which evmm creates (replacing a stale socket, never another file).
//   - One gdb at a time; evmm accepts it before the VM is built, so that the process's seccomp
//     filter, installed after, needs no socket calls: the thread only reads, writes and polls.
//   - gdb going away without 'D' or 'k' detaches: breakpoints are removed and the VM runs on.
//   - When the VM ends, gdb gets "W" and the VM's exit status; the thread then ends.
#pragma once

#include <functional>
#include <memory>
#include <string>
#include <thread>

#include "base/eventfd.h"
#include "base/fd.h"
#include "base/result.h"
#include "debug/gdb_packet.h"
#include "debug/gdb_stub.h"
#include "debug/vcpu_debugger.h"

namespace evmm {

struct GdbEndpoint {
  bool tcp = false;
  uint16_t port = 0;  // tcp
  std::string path;   // Unix socket
  std::string describe() const;
};

// EINVAL for port 0 or a port over 65535, or an empty path.
Result<GdbEndpoint> parse_gdb_endpoint(const std::string& spec);
// A listening socket bound to the endpoint.
Result<UniqueFd> gdb_listen(const GdbEndpoint& ep);
// Waits for gdb and returns the connection (blocking; EINTR is returned, not retried).
Result<UniqueFd> gdb_accept(int listen_fd);

struct GdbServerStats {
  std::atomic<uint64_t> packets{0}, bad_packets{0}, stops{0}, io_errors{0};
};

class GdbServer {
 public:
  // Serves conn on a thread of its own until gdb kills or detaches and leaves, or vm_stopped_fd
  // becomes readable; exit_status then gives the status for the "W" reply. The thread first runs
  // setup (evmm's seccomp filter for it); if that fails it serves nothing and lets the VM run.
  static Result<std::unique_ptr<GdbServer>> start(UniqueFd conn, VcpuDebugger& dbg, int vm_stopped_fd,
                                                  std::function<int()> exit_status,
                                                  std::function<Result<void>()> setup = nullptr);
  ~GdbServer();
  const GdbServerStats& stats() const { return stats_; }

 private:
  GdbServer(UniqueFd conn, VcpuDebugger& dbg, int vm_stopped_fd, std::function<int()> exit_status, EventFd quit);
  void serve(const std::function<Result<void>()>& setup);
  // false when the connection is gone.
  bool send_raw(const std::string& bytes);
  bool send_packet(const std::string& data);
  // One decoded event; false when the session is over.
  bool on_event(const gdb::PacketEvent& e);
  bool on_stop();
  // After the last reply: reads what gdb still sends until it closes (at most 2 s).
  void linger();

  UniqueFd conn_;
  VcpuDebugger& dbg_;
  int vm_stopped_fd_;
  std::function<int()> exit_status_;
  EventFd quit_;
  gdb::PacketDecoder decoder_;
  gdb::Stub stub_;
  std::string last_sent_;  // for a nack
  bool running_ = false;
  GdbServerStats stats_;
  std::thread thread_;
};

}  // namespace evmm
