// Completing an instruction the in-kernel emulator gave up on (vcpu/assist.h): decoding, then
// int3/int n/int1 delivery through the guest's IDT, GDT, TSS and stack, or the other assists, with
// memory operands through real page tables (identity-mapped by the fake env).
// The guest memory is 64 KiB from 0 holding a plausible 64-bit world (GDT, IDT, TSS; see
// testing/assist_test_env.h), addressed with identity translation.
// Input: byte 0 picks the starting mode (% 4: long, protected, real, compatibility), and with bit 2
// set turns on the SSE/AVX/AVX-512 state (CR4.OSFXSR/OSXSAVE, XCR0 as the host allows) for the
// replayed SIMD kinds; byte 1 gives the instruction length (% 16), then those bytes; then patches
// until the input ends, each one byte p then 2 bytes of place and 8 bytes of value: p & 1 == 1
// writes guest memory at place; p % 4 == 2 overwrites 8 bytes of the XSAVE area at place % (size - 7);
// p % 4 == 0 overwrites 8 bytes of the CPU state (kvm_regs then kvm_sregs) at place % (size - 7).
// Invariants from assist.h: a failure is EINVAL, EOPNOTSUPP or EFAULT (or rdpid's MSR error) with
// a message, and changes neither the CPU state nor guest memory; a success clears RFLAGS.RF, and
// only int3/int n/int1/iret change the segment registers, and only they and cmpxchg8b/16b guest memory;
// iret alone may leave RF set (it loads it from the stack). The replayed kinds (sse, avx, avx512,
// bmi) run the instruction on this process's CPU: they never change RSP, and only sse/avx/avx512 store.
#include <cerrno>
#include <cstring>
#include <vector>

#include "fuzz_input.h"
#include "vcpu/assist.h"
#include "testing/assist_test_env.h"
#include "vcpu/x86_arch.h"

using namespace evmm;
using namespace evmm::assist_testing;

namespace {

constexpr uint64_t kMemBytes = 64 * 1024;

// The world every input starts from: its GDT, and an IDT whose every gate leads to a present
// 64-bit handler, with a TSS whose stack pointers lie in RAM.
std::vector<uint8_t> world_image() {
  FakeEnv env(kMemBytes);
  write_gdt(env);
  for (uint64_t v = 0; v < 256; ++v) {
    uint64_t handler = 0xffffffff81000000 + v * 16;
    env.poke_le(kIdtBase + v * 16, (handler & 0xffff) | uint64_t{kSelCode64} << 16 | uint64_t{0x8e} << 40 |
                                       ((handler >> 16) & 0xffff) << 48, 8);
    env.poke_le(kIdtBase + v * 16 + 8, handler >> 32, 8);
  }
  for (uint64_t i = 0; i < 7; ++i) env.poke_le(kTssBase + 36 + 8 * i, 0x8000 + i * 0x800, 8);
  env.poke_le(0x10 * 4, 0x00001234, 4);  // a real-mode IVT entry
  return env.snapshot();
}

}  // namespace

extern "C" int LLVMFuzzerInitialize(int*, char***) {
  fuzz_quiet_logs();
  return 0;
}

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  static const std::vector<uint8_t> world = world_image();
  static FakeEnv env(kMemBytes);
  env.poke(0, world);
  env.msrs[x86::kMsrTscAux] = 0x1234567890;

  fuzz::Input in(data, size);
  CpuState cpu;
  uint8_t mode = in.u8();
  switch (mode % 4) {
    case 0: cpu = long_mode_state(); break;
    case 1: cpu = protected_mode_state(); break;
    case 2: cpu = real_mode_state(); break;
    default:
      cpu = long_mode_state();
      cpu.sregs.cs = flat_segment(kSelCode32, 0xb, false, true);
      break;
  }
  static const uint64_t host_simd = [] {
    uint32_t lo, hi;
    asm("xgetbv" : "=a"(lo), "=d"(hi) : "c"(0));
    return (lo | uint64_t{hi} << 32) & 0xe7;  // x87, SSE, AVX, AVX-512
  }();
  env.fpu.assign(4096, 0);
  env.fpu[0] = 0x7f, env.fpu[1] = 0x03, env.fpu[24] = 0x80, env.fpu[25] = 0x1f, env.fpu[512] = 3;
  env.xcr0 = 3;
  env.xcr0_supported = 7;
  if (mode & 4) {
    cpu.sregs.cr4 |= (1u << 9) | (1u << 10) | (1u << 18);  // OSFXSR, OSXMMEXCPT, OSXSAVE
    env.xcr0 = env.xcr0_supported = host_simd;
  }
  auto insn = in.bytes(in.u8() % 16);
  while (!in.done()) {
    uint8_t p = in.u8();
    uint64_t place = in.le(2);
    uint8_t value[8];
    uint64_t v = in.le(8);
    std::memcpy(value, &v, 8);
    if (p & 1) {
      std::vector<uint8_t> b(value, value + std::min<uint64_t>(8, kMemBytes - place));
      env.poke(place, b);
    } else if (p % 4 == 2) {
      std::memcpy(env.fpu.data() + place % (env.fpu.size() - 7), value, 8);
    } else {
      std::memcpy(reinterpret_cast<uint8_t*>(&cpu) + place % (sizeof cpu - 7), value, 8);
    }
  }

  std::vector<uint8_t> mem_before(kMemBytes), mem_after(kMemBytes);
  FUZZ_CHECK(env.memory().read(GuestAddress(0), mem_before));
  CpuState before = cpu;
  auto r = complete_instruction(insn, cpu, env);
  FUZZ_CHECK(env.memory().read(GuestAddress(0), mem_after));
  // A page walk through tables a random CR3 puts in this memory may set their accessed and dirty
  // flags (bits 5 and 6 of 8-byte entries), even when the instruction then faults; nothing else
  // may change unless the instruction writes memory.
  bool memory_same = true;
  for (size_t i = 0; i < mem_after.size(); ++i) {
    uint8_t x = mem_after[i] ^ mem_before[i];
    if (x && (i % 8 != 0 || (x & ~0x60) != 0)) memory_same = false;
  }
  if (!r) {
    int code = r.error().code();
    FUZZ_CHECK(code == EINVAL || code == EOPNOTSUPP || code == EFAULT);
    // A fault for the guest is an EINVAL (EFAULT for #PF, with its address), with a vector the vCPU can inject.
    if (auto f = r.error().fault())
      FUZZ_CHECK(f->vector < x86::Vector::Count && code == (f->vector == x86::Vector::PF ? EFAULT : EINVAL) &&
                 f->cr2.has_value() == (f->vector == x86::Vector::PF));
    FUZZ_CHECK(!r.error().message().empty());
    FUZZ_CHECK(std::memcmp(&cpu, &before, sizeof cpu) == 0);
    FUZZ_CHECK(memory_same);
    return 0;
  }
  FUZZ_CHECK(*r < AssistKind::Count);
  // iret loads RF from the stack; every other instruction clears it on completion.
  if (*r != AssistKind::Iret) FUZZ_CHECK((cpu.regs.rflags & x86::rflags::kRF) == 0);
  bool writes = *r == AssistKind::Int3 || *r == AssistKind::IntN || *r == AssistKind::Int1 ||
                *r == AssistKind::Iret || *r == AssistKind::Cmpxchg8b || *r == AssistKind::Cmpxchg16b ||
                *r == AssistKind::Stmxcsr || *r == AssistKind::Fxsave || *r == AssistKind::Xsave ||
                *r == AssistKind::Xsaveopt || *r == AssistKind::Sse || *r == AssistKind::Avx ||
                *r == AssistKind::Avx512;
  bool replayed = *r == AssistKind::Sse || *r == AssistKind::Avx || *r == AssistKind::Avx512 || *r == AssistKind::Bmi;
  if (replayed) FUZZ_CHECK(cpu.regs.rsp == before.regs.rsp);
  if (!writes) {
    FUZZ_CHECK(memory_same);
    FUZZ_CHECK(std::memcmp(&cpu.sregs, &before.sregs, sizeof cpu.sregs) == 0);
  }
  return 0;
}
