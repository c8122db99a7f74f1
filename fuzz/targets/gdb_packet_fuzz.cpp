// The GDB remote stub's peer-facing input (debug/gdb_packet.h, debug/gdb_stub.h): bytes from gdb
// through the packet decoder, and every packet it completes through the command stub over a fake
// two-thread target with one mapped page at 0x1000. Input: one byte giving the size of the reads
// the bytes arrive in (1 to 256), then the bytes.
// Invariants: a decoded packet has at most kMaxPacket bytes and frames back to itself; events are
// counted in the decoder's stats; a reply fits in the PacketSize the stub announces; a resume
// command gives no reply and 'k' kills.
#include <algorithm>
#include <array>
#include <cstring>

#include "debug/gdb_packet.h"
#include "debug/gdb_stub.h"
#include "fuzz_input.h"

using namespace evmm;

namespace {

class FakeTarget final : public DebugTarget {
 public:
  unsigned thread_count() const override { return 2; }
  Result<GdbRegisters> read_registers(unsigned t) override {
    FUZZ_CHECK(t < 2);
    return regs[t];
  }
  Result<void> write_registers(unsigned t, const GdbRegisters& r) override {
    FUZZ_CHECK(t < 2);
    regs[t] = r;
    return {};
  }
  Result<void> read_memory(unsigned t, uint64_t gva, std::span<uint8_t> out) override {
    FUZZ_CHECK(t < 2);
    if (gva < 0x1000 || gva > 0x2000 || out.size() > 0x2000 - gva) return make_error(EFAULT, "unmapped");
    std::copy_n(page.data() + (gva - 0x1000), out.size(), out.data());  // "m addr,0" is an empty span
    return {};
  }
  Result<void> write_memory(unsigned t, uint64_t gva, std::span<const uint8_t> in) override {
    FUZZ_CHECK(t < 2);
    if (gva < 0x1000 || gva > 0x2000 || in.size() > 0x2000 - gva) return make_error(EFAULT, "unmapped");
    std::copy_n(in.data(), in.size(), page.data() + (gva - 0x1000));
    return {};
  }
  Result<void> insert_breakpoint(BreakKind k, uint64_t, uint64_t) override {
    FUZZ_CHECK(static_cast<int>(k) >= 0 && static_cast<int>(k) <= 4);
    return {};
  }
  Result<void> remove_breakpoint(BreakKind, uint64_t, uint64_t) override { return {}; }
  Result<void> resume(std::span<const ResumeAction> a) override {
    FUZZ_CHECK(a.size() == 2);
    ++resumes;
    return {};
  }
  Result<void> detach() override { return {}; }
  void kill() override { killed = true; }

  std::array<GdbRegisters, 2> regs{};
  std::array<uint8_t, 0x1000> page{};
  unsigned resumes = 0;
  bool killed = false;
};

}  // namespace

extern "C" int LLVMFuzzerInitialize(int*, char***) {
  fuzz_quiet_logs();
  return 0;
}

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  fuzz::Input in(data, size);
  size_t chunk = size_t{in.u8()} + 1;
  auto bytes = in.rest();
  gdb::PacketDecoder decoder;
  FakeTarget target;
  gdb::Stub stub(target);
  std::vector<gdb::PacketEvent> events;
  uint64_t seen = 0;
  for (size_t off = 0; off < bytes.size(); off += chunk) {
    events.clear();
    decoder.feed(bytes.subspan(off, std::min(chunk, bytes.size() - off)), events);
    seen += events.size();
    for (const auto& e : events) {
      if (e.kind != gdb::PacketEvent::Kind::Packet) continue;
      FUZZ_CHECK(e.data.size() <= gdb::kMaxPacket);
      // What gdb would send for this data decodes to the same data.
      gdb::PacketDecoder again;
      std::vector<gdb::PacketEvent> round;
      std::string framed = gdb::frame(e.data);
      again.feed(std::span(reinterpret_cast<const uint8_t*>(framed.data()), framed.size()), round);
      FUZZ_CHECK(round.size() == 1 && round[0].kind == gdb::PacketEvent::Kind::Packet && round[0].data == e.data);
      unsigned resumes = target.resumes;
      auto reply = stub.handle(e.data);
      if (reply) FUZZ_CHECK(reply->size() <= gdb::kMaxPacket);
      else FUZZ_CHECK(target.resumes == resumes + 1 || stub.killed());
      if (stub.killed()) FUZZ_CHECK(target.killed);
    }
  }
  const auto& s = decoder.stats();
  FUZZ_CHECK(s.packets + s.bad_checksums + s.too_long <= seen);
  return 0;
}
