// evmm's vhost-user frontend (vhost/frontend.h) reading whatever a backend sends. Input: the bytes
// the backend writes, all of them, before it stops sending (so every read ends). The frontend runs
// its whole control path against them: negotiate, GET_QUEUE_NUM, GET_CONFIG, SET_MEM_TABLE, the
// dirty log (SET_LOG_BASE's reply, SET_FEATURES with LOG_ALL), a ring's start and stop.
// Invariants: every step succeeds or fails with one of the errnos frontend.h names; once the
// connection is broken nothing more is sent (ENOTCONN, or EOPNOTSUPP for what was never negotiated); GET_CONFIG returns exactly the bytes asked
// for; no read past what came, no hang.
#include <sys/eventfd.h>
#include <sys/mman.h>
#include <sys/socket.h>
#include <unistd.h>

#include "fuzz_input.h"
#include "vhost/frontend.h"

using namespace evmm;
using namespace evmm::vhost;

extern "C" int LLVMFuzzerInitialize(int*, char***) {
  fuzz_quiet_logs();
  return 0;
}

namespace {

bool allowed(int e) {
  return e == EPROTO || e == EBADMSG || e == EMSGSIZE || e == EREMOTEIO || e == ECONNRESET || e == ENOTCONN ||
         e == EOPNOTSUPP;
}

template <typename T>
void check(const Result<T>& r, const Frontend& fe, bool& was_broken) {
  if (!r) {
    FUZZ_CHECK(allowed(r.error().code()));
    FUZZ_CHECK(!r.error().message().empty());
    // Broken: nothing is sent (a step that needs no backend, like GET_CONFIG without CONFIG, says so).
    if (was_broken) FUZZ_CHECK(r.error().code() == ENOTCONN || r.error().code() == EOPNOTSUPP);
  }
  was_broken = fe.broken();
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  int sv[2];
  if (::socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, sv) != 0) return 0;
  UniqueFd backend(sv[0]);
  int buf = 1 << 20;
  ::setsockopt(sv[1], SOL_SOCKET, SO_SNDBUF, &buf, sizeof buf);
  if (size && ::write(backend.get(), data, size) != ssize_t(size)) return 0;
  ::shutdown(backend.get(), SHUT_WR);
  auto fe = Frontend::over(UniqueFd(sv[1]), 1000).value();

  static UniqueFd mem(::memfd_create("fuzz-ram", MFD_CLOEXEC));
  static UniqueFd kick(::eventfd(0, EFD_CLOEXEC)), call(::eventfd(0, EFD_CLOEXEC));
  bool broken = false;
  check(fe->negotiate(~0ull), *fe, broken);
  check(fe->queue_num(), *fe, broken);
  auto config = fe->get_config(4, 60);
  check(config, *fe, broken);
  if (config) FUZZ_CHECK(config->size() == 60);
  Frontend::Region region{0, 1 << 20, 0x7f0000000000, mem.get(), 0};
  check(fe->set_mem_table({&region, 1}), *fe, broken);
  static UniqueFd log(::memfd_create("fuzz-log", MFD_CLOEXEC));
  check(fe->set_log_base(log.get(), 4096), *fe, broken);
  check(fe->set_logging(true), *fe, broken);
  check(fe->start_ring(0, Frontend::Ring{8, 0x7f0000000000, 0x7f0000000100, 0x7f0000000200, 0, kick.get(), call.get(), 0x200}), *fe,
        broken);
  check(fe->stop_ring(0), *fe, broken);
  return 0;
}
