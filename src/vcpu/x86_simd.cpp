#include "vcpu/x86_simd.h"

#include <sys/mman.h>

#include <csetjmp>
#include <csignal>

#include <algorithm>
#include <array>
#include <cstring>
#include <mutex>

// evmm_simd_replay_call(ctx): saves the host's state (xsave64 with ctx->rfbm), loads the guest's
// (xrstor64), the guest's arithmetic flags over the host's RFLAGS, and every general register but
// RSP from ctx->gpr (in ModRM order); calls ctx->code (the instruction, then ret); stores the
// general registers and RFLAGS back, saves the result (xsave64) and restores the host's state.
// The instruction runs on the host's stack, which it cannot name (x86_decode_replay.cpp).
asm(R"(
  .text
  .p2align 4
  .globl evmm_simd_replay_call
  .type evmm_simd_replay_call, @function
evmm_simd_replay_call:
  push %rbp
  push %rbx
  push %r12
  push %r13
  push %r14
  push %r15
  push %rdi
  mov 144(%rdi), %eax
  mov 148(%rdi), %edx
  mov 160(%rdi), %rcx
  xsave64 (%rcx)
  mov 152(%rdi), %rcx
  xrstor64 (%rcx)
  pushq 136(%rdi)
  pushfq
  pop %rax
  and $-0x8d6, %rax
  mov 128(%rdi), %rcx
  and $0x8d5, %rcx
  or %rcx, %rax
  push %rax
  popfq
  mov 0(%rdi), %rax
  mov 8(%rdi), %rcx
  mov 16(%rdi), %rdx
  mov 24(%rdi), %rbx
  mov 40(%rdi), %rbp
  mov 48(%rdi), %rsi
  mov 64(%rdi), %r8
  mov 72(%rdi), %r9
  mov 80(%rdi), %r10
  mov 88(%rdi), %r11
  mov 96(%rdi), %r12
  mov 104(%rdi), %r13
  mov 112(%rdi), %r14
  mov 120(%rdi), %r15
  mov 56(%rdi), %rdi
  call *(%rsp)
  pushfq
  push %rdi
  mov 24(%rsp), %rdi
  mov %rax, 0(%rdi)
  mov %rcx, 8(%rdi)
  mov %rdx, 16(%rdi)
  mov %rbx, 24(%rdi)
  mov %rbp, 40(%rdi)
  mov %rsi, 48(%rdi)
  mov %r8, 64(%rdi)
  mov %r9, 72(%rdi)
  mov %r10, 80(%rdi)
  mov %r11, 88(%rdi)
  mov %r12, 96(%rdi)
  mov %r13, 104(%rdi)
  mov %r14, 112(%rdi)
  mov %r15, 120(%rdi)
  popq 56(%rdi)
  popq 128(%rdi)
  add $8, %rsp
  pop %rdi
  mov 144(%rdi), %eax
  mov 148(%rdi), %edx
  mov 152(%rdi), %rcx
  xsave64 (%rcx)
  mov 160(%rdi), %rcx
  xrstor64 (%rcx)
  pop %r15
  pop %r14
  pop %r13
  pop %r12
  pop %rbx
  pop %rbp
  ret
  .size evmm_simd_replay_call, .-evmm_simd_replay_call
)");

namespace {
struct ReplayContext {
  uint64_t gpr[16];  // ModRM order: rax rcx rdx rbx rsp(unused) rbp rsi rdi r8..r15
  uint64_t rflags;
  const void* code;
  uint64_t rfbm;
  void* guest;  // in: the state to load; out: the state after the instruction
  void* host;
};
static_assert(offsetof(ReplayContext, rflags) == 128 && offsetof(ReplayContext, code) == 136 &&
              offsetof(ReplayContext, rfbm) == 144 && offsetof(ReplayContext, guest) == 152 &&
              offsetof(ReplayContext, host) == 160);
}  // namespace

extern "C" void evmm_simd_replay_call(ReplayContext* ctx);

namespace evmm::x86 {
namespace {

constexpr uint64_t kArithFlags = 0x8d5;  // OF SF ZF AF PF CF
constexpr uint32_t kMxcsrMasks = 0x1f80, kMxcsrFlags = 0x3f;
constexpr unsigned kZmmComponents[] = {2, 5, 6, 7};  // YMM_Hi128, opmask, ZMM_Hi256, Hi16_ZMM

uint64_t host_xcr0() {
  uint32_t lo, hi;
  asm volatile("xgetbv" : "=a"(lo), "=d"(hi) : "c"(0));
  return lo | uint64_t{hi} << 32;
}

// One thread's pages: code (instructions, each followed by ret, in slots), the operand buffer
// right after it so that [rip + disp32] reaches it, and the two XSAVE areas. The code page is
// writable only while a slot is filled (W^X); slots are reused once all are taken.
class ReplayPages {
 public:
  static constexpr size_t kPage = 4096, kSlot = 32, kSlots = kPage / kSlot, kArea = 2 * kPage;

  ReplayPages() {
    void* p = ::mmap(nullptr, 2 * kPage + 2 * kArea, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
    if (p == MAP_FAILED) return;
    base_ = static_cast<uint8_t*>(p);
    if (::mprotect(base_, kPage, PROT_READ | PROT_EXEC) != 0) {
      ::munmap(base_, 2 * kPage + 2 * kArea);
      base_ = nullptr;
    }
  }
  ~ReplayPages() {
    if (base_) ::munmap(base_, 2 * kPage + 2 * kArea);
  }
  ReplayPages(const ReplayPages&) = delete;
  ReplayPages& operator=(const ReplayPages&) = delete;

  bool ok() const { return base_ != nullptr; }
  uint8_t* buffer() { return base_ + kPage; }
  uint8_t* guest_area() { return base_ + 2 * kPage; }
  uint8_t* host_area() { return base_ + 2 * kPage + kArea; }

  // The code for r, its disp32 aimed at buffer().
  Result<const void*> code(const ReplayInsn& r) {
    std::span<const uint8_t> key(r.bytes.data(), r.length);
    for (size_t i = 0; i < used_; ++i)
      if (std::ranges::equal(std::span<const uint8_t>(keys_[i].data(), lengths_[i]), key)) return base_ + i * kSlot;
    if (used_ == kSlots) used_ = 0;
    size_t slot = used_++;
    uint8_t code[kSlot] = {};
    std::memcpy(code, r.bytes.data(), r.length);
    code[r.length] = 0xc3;  // ret
    if (r.disp_offset) {
      int64_t rel = buffer() - (base_ + slot * kSlot + r.length);
      int32_t rel32 = static_cast<int32_t>(rel);
      std::memcpy(code + r.disp_offset, &rel32, 4);
    }
    if (::mprotect(base_, kPage, PROT_READ | PROT_WRITE) != 0) return errno_error("replay code page: mprotect");
    std::memcpy(base_ + slot * kSlot, code, kSlot);
    if (::mprotect(base_, kPage, PROT_READ | PROT_EXEC) != 0) return errno_error("replay code page: mprotect");
    std::memcpy(keys_[slot].data(), r.bytes.data(), r.length);
    lengths_[slot] = r.length;
    return base_ + slot * kSlot;
  }

 private:
  uint8_t* base_ = nullptr;
  std::array<std::array<uint8_t, kSlot>, kSlots> keys_{};
  std::array<uint8_t, kSlots> lengths_{};
  size_t used_ = 0;
};

ReplayPages& pages() {
  thread_local ReplayPages p;
  return p;
}

// Should the host CPU refuse what the decoder let through (an encoding Zydis accepts and the CPU
// does not), the replay must not kill evmm: a SIGILL, SIGSEGV or SIGFPE raised while this thread
// replays jumps back out of it. Signals outside a replay go to the handler that was there before.
thread_local sigjmp_buf* t_replay_jump = nullptr;
thread_local volatile sig_atomic_t t_replay_signal = 0;
constexpr int kGuarded[] = {SIGILL, SIGSEGV, SIGFPE};
struct sigaction g_previous[3];

void on_replay_fault(int sig, siginfo_t* info, void* uc) {
  if (t_replay_jump) {
    t_replay_signal = sig;
    siglongjmp(*t_replay_jump, 1);
  }
  size_t i = static_cast<size_t>(std::find(std::begin(kGuarded), std::end(kGuarded), sig) - std::begin(kGuarded));
  const struct sigaction& old = g_previous[i];
  if ((old.sa_flags & SA_SIGINFO) && old.sa_sigaction) return old.sa_sigaction(sig, info, uc);
  if (old.sa_handler == SIG_IGN) return;
  if (old.sa_handler != SIG_DFL) return old.sa_handler(sig);
  // Returning re-executes the faulting instruction, now with the default action.
  ::signal(sig, SIG_DFL);
}

Result<void> install_guard() {
  static std::once_flag once;
  static int err = 0;
  std::call_once(once, [] {
    struct sigaction sa {};
    sa.sa_sigaction = on_replay_fault;
    sa.sa_flags = SA_SIGINFO | SA_NODEFER;
    sigemptyset(&sa.sa_mask);
    for (size_t i = 0; i < 3; ++i)
      if (::sigaction(kGuarded[i], &sa, &g_previous[i]) != 0) err = errno;
  });
  if (err) return make_error(err, "sigaction for the replay's guard");
  return {};
}

// Runs the stub; the signal the host raised instead, or 0.
int guarded_call(ReplayContext& ctx) {
  sigjmp_buf jump;
  if (sigsetjmp(jump, 1) != 0) {
    t_replay_jump = nullptr;
    // The stub stopped with the guest's vector state loaded: put the host's back.
    uint32_t lo = static_cast<uint32_t>(ctx.rfbm), hi = static_cast<uint32_t>(ctx.rfbm >> 32);
    asm volatile("xrstor64 (%0)" : : "r"(ctx.host), "a"(lo), "d"(hi) : "memory");
    return t_replay_signal;
  }
  t_replay_jump = &jump;
  evmm_simd_replay_call(&ctx);
  t_replay_jump = nullptr;
  return 0;
}

// kvm_regs and the ModRM numbering of general registers (SDM vol. 2 table 2-2).
std::array<__u64*, 16> gprs(kvm_regs& r) {
  return {&r.rax, &r.rcx, &r.rdx, &r.rbx, &r.rsp, &r.rbp, &r.rsi, &r.rdi,
          &r.r8,  &r.r9,  &r.r10, &r.r11, &r.r12, &r.r13, &r.r14, &r.r15};
}

}  // namespace

AssistResult<void> simd_check(const FpuCpu& c, const ReplayInsn& r) {
  if (r.vector) {
    if (r.encoding == ReplayInsn::Encoding::Legacy) {
      if ((c.cr0 & kCr0Em) || !(c.cr4 & kCr4Osfxsr))
        return raise(Fault{Vector::UD, {}, {}}, "{} with CR0.EM set or CR4.OSFXSR clear", r.mnemonic);
    } else {
      uint64_t need = xfeature::kSse | xfeature::kAvx | (r.avx512 ? xfeature::kAvx512 : 0);
      if (!(c.cr4 & kCr4Osxsave) || (c.xcr0 & need) != need)
        return raise(Fault{Vector::UD, {}, {}}, "{} with CR4.OSXSAVE clear or XCR0 {:#x} lacking {:#x}", r.mnemonic,
                     c.xcr0, need);
    }
    if (c.cr0 & kCr0Ts) return raise(Fault{Vector::NM, {}, {}}, "{} with CR0.TS set", r.mnemonic);
  }
  return {};
}

AssistResult<bool> simd_replay(FpuState& s, const FpuCpu& c, const ReplayInsn& r, LinearMemory& mem,
                               std::optional<uint64_t> linear, unsigned size, kvm_regs& regs) {
  TRY(simd_check(c, r));
  if (linear && (size > 64 || size == 0)) return make_error(EINVAL, "{}: memory operand of {} bytes", r.mnemonic, size);
  if (linear && *linear % r.align)
    return raise(Fault{Vector::GP, 0u, {}}, "{}: operand at {:#x} not aligned to {}", r.mnemonic, *linear, r.align);
  std::array<uint8_t, 64> in{}, out{}, in2{}, out2{};
  bool two_runs = linear && r.mem_write && r.masked;
  if (linear && (r.mem_read || two_runs)) {
    auto read = mem.read(*linear, std::span(in).first(size));
    if (!read && r.masked && read.error().fault())
      return make_error(EOPNOTSUPP, "{}: masked access at {:#x} to a page that does not translate is not modelled",
                        r.mnemonic, *linear);
    TRY(std::move(read));
  }
  for (size_t i = 0; i < in.size(); ++i) in2[i] = static_cast<uint8_t>(~in[i]);

  ReplayPages& p = pages();
  if (!p.ok()) return make_error(ENOMEM, "{}: no pages for the replay", r.mnemonic);
  const void* code = TRY(p.code(r));
  const XsaveLayout& layout = s.layout();
  uint64_t rfbm = (xfeature::kX87 | xfeature::kSse | (c.xcr0 & (xfeature::kAvx | xfeature::kAvx512))) &
                  host_xcr0() & layout.xcr0_supported;
  if (layout.area_size(rfbm) > ReplayPages::kArea || layout.area_size(rfbm) > s.bytes().size())
    return make_error(EINVAL, "{}: XSAVE area of {} bytes", r.mnemonic, layout.area_size(rfbm));

  uint8_t* area = p.guest_area();
  auto load_guest = [&] {
    std::memset(area, 0, ReplayPages::kArea);
    std::memcpy(area, s.bytes().data(), FpuState::kLegacySize);
    // The host copy runs with every SIMD exception masked and no flag set, so that the flags it
    // comes back with are what this instruction raised (checked below). Reserved bits would be a #GP.
    uint32_t mxcsr = (s.mxcsr() & layout.mxcsr_mask & ~kMxcsrFlags) | kMxcsrMasks;
    std::memcpy(area + FpuState::kMxcsr, &mxcsr, 4);
    uint64_t bv = s.xstate_bv() & rfbm;
    for (unsigned i : kZmmComponents)
      if ((rfbm >> i) & 1) std::memcpy(area + layout.offset[i], s.bytes().data() + layout.offset[i], layout.size[i]);
    std::memcpy(area + FpuState::kXstateBv, &bv, 8);
    std::memset(p.host_area() + FpuState::kXstateBv, 0, FpuState::kHeaderSize);
  };
  TRY(install_guard());
  auto run = [&](std::span<const uint8_t> buf_in, std::span<uint8_t> buf_out, ReplayContext& ctx) -> AssistResult<void> {
    load_guest();
    std::memcpy(p.buffer(), buf_in.data(), buf_in.size());
    auto g = gprs(regs);
    for (size_t i = 0; i < 16; ++i) ctx.gpr[i] = *g[i];
    ctx.rflags = regs.rflags;
    ctx.code = code;
    ctx.rfbm = rfbm;
    ctx.guest = area;
    ctx.host = p.host_area();
    if (int sig = guarded_call(ctx); sig == SIGILL)
      return raise(Fault{Vector::UD, {}, {}}, "{}: the host CPU raised #UD", r.mnemonic);
    else if (sig)
      return make_error(EOPNOTSUPP, "{}: the host CPU raised signal {} replaying it", r.mnemonic, sig);
    std::memcpy(buf_out.data(), p.buffer(), buf_out.size());
    return {};
  };
  ReplayContext ctx{};
  if (two_runs) TRY(run(in2, out2, ctx));  // the second fill first: the last run's state is the one kept
  TRY(run(in, out, ctx));

  // An exception the guest unmasks would have been #XM (or #UD without CR4.OSXMMEXCPT) with the
  // destination untouched (SDM vol. 1 11.5.1): not modelled, so nothing is committed.
  uint32_t out_mxcsr;
  std::memcpy(&out_mxcsr, area + FpuState::kMxcsr, 4);
  uint32_t raised = out_mxcsr & kMxcsrFlags, unmasked = ~(s.mxcsr() >> 7) & kMxcsrFlags;
  if (raised & unmasked)
    return make_error(EOPNOTSUPP, "{} raised SIMD exception flags {:#x} that MXCSR {:#x} unmasks: #XM is not modelled",
                      r.mnemonic, raised, s.mxcsr());

  if (linear && r.mem_write) {
    if (!two_runs) {
      TRY(mem.stage(*linear, std::span<const uint8_t>(out).first(size)));
    } else {
      // A byte the instruction writes comes out the same whatever the buffer held before.
      for (unsigned i = 0; i < size;) {
        auto written = [&](unsigned j) { return out[j] != in[j] || out2[j] != in2[j]; };
        if (!written(i)) { ++i; continue; }
        unsigned j = i;
        while (j < size && written(j)) ++j;
        TRY(mem.stage(*linear + i, std::span<const uint8_t>(out).subspan(i, j - i)));
        i = j;
      }
    }
    TRY(mem.commit());
  }

  auto g = gprs(regs);
  for (size_t i = 0; i < 16; ++i)
    if (i != 4) *g[i] = ctx.gpr[i];
  regs.rflags = (regs.rflags & ~kArithFlags) | (ctx.rflags & kArithFlags);
  if (!r.vector && !r.uses_mxcsr) return false;

  // The vector state: MXCSR (the guest's, with the flags raised now), XMM, and the AVX and AVX-512
  // components with their XSTATE_BV bits; a component xsave found in its initial state is zeros.
  uint64_t out_bv;
  std::memcpy(&out_bv, area + FpuState::kXstateBv, 8);
  s.set(FpuState::kMxcsr, s.mxcsr() | raised, 4);
  auto bytes = s.bytes();
  if (out_bv & xfeature::kSse) std::memcpy(bytes.data() + FpuState::kXmm0, area + FpuState::kXmm0, 256);
  else std::fill_n(bytes.begin() + FpuState::kXmm0, 256, uint8_t{0});
  for (unsigned i : kZmmComponents) {
    if (!((rfbm >> i) & 1)) continue;
    if ((out_bv >> i) & 1) std::memcpy(bytes.data() + layout.offset[i], area + layout.offset[i], layout.size[i]);
    else std::fill_n(bytes.begin() + layout.offset[i], layout.size[i], uint8_t{0});
  }
  uint64_t replayed = rfbm & ~xfeature::kX87;
  s.set(FpuState::kXstateBv, (s.xstate_bv() & ~replayed) | (out_bv & replayed), 8);
  return true;
}

}  // namespace evmm::x86
