// Guest RAM for a fuzz target: Bytes from address 0, made once per process (a memfd and a mapping
// per input would dominate the run) and zeroed again for every input, so inputs do not leak into
// each other.
#pragma once

#include <cstdint>

#include "fuzz_input.h"
#include "memory/guest_memory.h"

namespace evmm::fuzz {

template <uint64_t Bytes>
const GuestMemory& zeroed_memory() {
  static GuestMemory mem = [] {
    auto m = GuestMemory::create({{GuestAddress(0), Bytes}});
    FUZZ_CHECK(m);
    return std::move(*m);
  }();
  FUZZ_CHECK(mem.fill(GuestAddress(0), 0, Bytes));
  return mem;
}

}  // namespace evmm::fuzz
