// cmpxchg8b/16b completed by evmm while other vCPUs run: counters incremented with compare-exchange
// loops from several threads through the assist must lose no increment, which only an atomic
// exchange on guest memory guarantees.
#include <gtest/gtest.h>

#include <thread>
#include <vector>

#include "testing/assist_test_env.h"
#include "vcpu/assist.h"

namespace evmm {
namespace {

using namespace assist_testing;

constexpr int kThreads = 3, kIncrements = 20000;
constexpr uint64_t kCounter = 0x10000;

void increment_loop(FakeEnv& env, bool wide, int* failures) {
  CpuState cpu = long_mode_state();
  cpu.regs.rdi = kCounter;
  const std::vector<uint8_t> insn = wide ? std::vector<uint8_t>{0xf0, 0x48, 0x0f, 0xc7, 0x0f}
                                         : std::vector<uint8_t>{0xf0, 0x0f, 0xc7, 0x0f};
  // Start from a guess; a failed compare loads the current value into rdx:rax.
  cpu.regs.rax = cpu.regs.rdx = 0;
  for (int done = 0; done < kIncrements;) {
    if (wide) {
      cpu.regs.rbx = cpu.regs.rax + 1;
      cpu.regs.rcx = cpu.regs.rdx + (cpu.regs.rbx == 0);
    } else {
      uint64_t v = ((cpu.regs.rdx & 0xffffffff) << 32 | (cpu.regs.rax & 0xffffffff)) + 1;
      cpu.regs.rbx = v & 0xffffffff;
      cpu.regs.rcx = v >> 32;
    }
    cpu.regs.rip = 0x1000;
    auto r = complete_instruction(insn, cpu, env);
    if (!r) {
      ++*failures;
      return;
    }
    if (cpu.regs.rflags & (1u << 6)) {
      ++done;
      cpu.regs.rax = cpu.regs.rbx;
      cpu.regs.rdx = cpu.regs.rcx;
    }
  }
}

void run(bool wide) {
  FakeEnv env;
  env.poke_le(kCounter, 0, 8);
  env.poke_le(kCounter + 8, 0, 8);
  std::vector<std::thread> threads;
  std::vector<int> failures(kThreads);
  for (int i = 0; i < kThreads; ++i) threads.emplace_back(increment_loop, std::ref(env), wide, &failures[i]);
  for (auto& t : threads) t.join();
  for (int f : failures) EXPECT_EQ(f, 0);
  EXPECT_EQ(env.peek_le(kCounter, 8), uint64_t{kThreads} * kIncrements);
  EXPECT_EQ(env.peek_le(kCounter + 8, 8), 0u);
}

TEST(AssistCmpxchgConcurrent, Cmpxchg8bLosesNoIncrement) { run(false); }
TEST(AssistCmpxchgConcurrent, Cmpxchg16bLosesNoIncrement) { run(true); }

}  // namespace
}  // namespace evmm
