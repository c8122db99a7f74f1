// Xen hypercalls (xen/xen_hvm.h) as a guest makes them: argument registers, the structs they
// point at in guest memory, and the hypercall page MSR, for either guest width. Guest-virtual
// addresses map 1:1 onto 16 MiB of RAM except for a hole that faults (testing/xen_test_caller.h);
// waits (SCHEDOP_block, SCHEDOP_poll) end at once.
// Input: byte 0 picks the width and the calling vCPU (bit 0: 32-bit, bit 1: vCPU 1); then ops:
//   0 addr:3 len:1 bytes   guest memory write
//   1 nr:1 a0..a4:4 each   hypercall
//   2 value:4              write of the hypercall page MSR
// Invariants: every result is 0, a positive count, or a negative Xen errno; console output never
// exceeds what the guest asked for; the stats stay consistent.
#include "fuzz_input.h"
#include "testing/xen_test_caller.h"

using namespace evmm;

extern "C" int LLVMFuzzerInitialize(int*, char***) {
  fuzz_quiet_logs();
  return 0;
}

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  fuzz::Input in(data, size);
  static GuestMemory mem = *GuestMemory::create_pc(16 << 20);
  for (const auto& r : mem.regions()) FUZZ_CHECK(mem.fill(r.start, 0, r.size));
  const uint8_t mode = in.u8();
  const XenWidth width = (mode & 1) ? XenWidth::Bits32 : XenWidth::Bits64;
  testing::Recorder rec;
  auto xen = testing::make_xen(mem, rec);
  FUZZ_CHECK(xen);
  testing::FakeCaller caller(mem, (mode >> 1) & 1, width, /*sleeps=*/false);
  uint64_t asked = 0, calls = 0;
  while (!in.done()) {
    switch (in.u8() % 3) {
      case 0: {
        uint64_t addr = in.le(3);
        auto bytes = in.bytes(in.u8());
        (void)mem.write(GuestAddress(addr), bytes);
        break;
      }
      case 1: {
        HypercallArgs h{in.u8(), {}};
        for (auto& a : h.a) a = in.le(4);
        if (h.nr == __HYPERVISOR_console_io && h.a[0] == CONSOLEIO_write) asked += h.a[1] & 0xffffffffu;
        int64_t r = xen->hypercall(caller, h);
        calls++;
        FUZZ_CHECK(r >= -XEN_ECONNREFUSED);
        if (width == XenWidth::Bits32) FUZZ_CHECK(r <= INT32_MAX);
        break;
      }
      default:
        (void)xen->on_msr(caller.vcpu(), width, true, 0x40000000, in.le(4));
        break;
    }
  }
  auto st = xen->stats();
  FUZZ_CHECK(st.hypercalls == calls);
  FUZZ_CHECK(st.console_bytes <= asked && st.console_bytes == rec.console.size());
  FUZZ_CHECK(st.faults + st.unknown_hypercalls <= calls);
  return 0;
}
