#include "xen/hypercall_abi.h"

#include <algorithm>

namespace evmm {

HypercallArgs decode_hypercall(const kvm_regs& r, XenWidth width) {
  if (width == XenWidth::Bits64) return {r.rax, {r.rdi, r.rsi, r.rdx, r.r10, r.r8}};
  auto lo = [](uint64_t v) { return v & 0xffffffffu; };
  return {lo(r.rax), {lo(r.rbx), lo(r.rcx), lo(r.rdx), lo(r.rsi), lo(r.rdi)}};
}

void write_hypercall_page(std::span<uint8_t, kXenPageSize> page) {
  std::fill(page.begin(), page.end(), uint8_t{0xcc});
  for (uint32_t nr = 0; nr < kXenPageSize / kXenHypercallStubSize; nr++) {
    auto stub = page.subspan(nr * kXenHypercallStubSize, kXenHypercallStubSize);
    size_t at = 0;
    auto emit = [&](uint8_t b) { stub[at++] = b; };
    emit(0xb8);  // mov $nr, %eax
    for (int i = 0; i < 4; i++) emit(static_cast<uint8_t>(nr >> (8 * i)));
    emit(0xe7);  // out %eax, $port
    emit(static_cast<uint8_t>(kXenHypercallPort));
    emit(0xc3);  // ret
  }
}

uint64_t hypercall_rax(int64_t result, XenWidth width) {
  auto low = static_cast<uint32_t>(result);
  if (width == XenWidth::Bits32) return low;
  return static_cast<uint64_t>(static_cast<int64_t>(static_cast<int32_t>(low)));
}

}  // namespace evmm
