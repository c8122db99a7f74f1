// __HYPERVISOR_console_io: the early console, written straight from guest memory.
#include "xen/xen_hvm_internal.h"

namespace evmm {

int64_t XenHvm::console_io(XenCaller& c, uint64_t cmd, uint64_t count, uint64_t buffer) {
  switch (cmd) {
    case CONSOLEIO_write: {
      // Streamed a page at a time straight from guest memory: the length costs time, never memory.
      // Xen's count is an unsigned int.
      uint64_t n = count & 0xffffffffu;
      return c.va().for_each_piece(buffer, n, [&](std::span<const uint8_t> piece) {
        if (env_.console) env_.console(piece);
        counters_->console_bytes.fetch_add(piece.size(), std::memory_order_relaxed);
        return true;
      });
    }
    case CONSOLEIO_read: return 0;  // no input for a Xen console here
    default: return xen_enosys(counters_->unknown);
  }
}

}  // namespace evmm
