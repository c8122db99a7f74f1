// The instruction families of complete_instruction (assist.cpp), one file each. Internal to vcpu/.
// Each runs one decoded instruction against `next`, a copy of the vCPU state, and leaves RIP and
// RFLAGS.RF to the caller; on error `next` is thrown away, and guest memory is untouched unless
// the error says otherwise.
#pragma once

#include "kvm/kvm_uapi.h"

#include <cstdint>
#include <string>

#include "vcpu/assist.h"
#include "vcpu/x86_decode.h"
#include "vcpu/x86_fault.h"

namespace evmm::assist_ops {

struct Step {
  const x86::DecodedInsn& d;
  CpuState& next;
  AssistEnv& env;
  uint64_t next_rip;
  const std::string& what;  // "popcnt (f3 0f b8 03)", for messages
};

// Writes the low `bits` of value to register n: a 16-bit write keeps bits 63:16, a 32-bit write
// zero-extends (SDM vol. 1 3.4.1.1).
void write_register(kvm_regs& regs, unsigned n, uint64_t value, unsigned bits);

x86::AssistResult<void> bit_count(const Step& s);   // popcnt, lzcnt, tzcnt (assist_bits.cpp)
x86::AssistResult<void> cmpxchg(const Step& s);     // cmpxchg8b, cmpxchg16b (assist_cmpxchg.cpp)
x86::AssistResult<void> cache_line(const Step& s);  // clflush, clflushopt, clwb (assist_cache.cpp)
x86::AssistResult<void> invpcid(const Step& s);     // assist_cache.cpp
x86::AssistResult<void> segment_query(const Step& s);  // lsl, lar (assist_segment.cpp)

}  // namespace evmm::assist_ops
