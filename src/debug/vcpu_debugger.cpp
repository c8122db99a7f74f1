#include "debug/vcpu_debugger.h"

#include <cstring>

#include <fmt/format.h>

#include "base/discard.h"
#include "base/log.h"

namespace evmm {
namespace {

constexpr uint64_t kPage = 4096;
constexpr uint8_t kInt3 = 0xcc;
// DR6's single-step bit, BS (SDM vol. 3 18.2.3); its low four bits are B0-B3, one per DR0-DR3.
constexpr uint64_t kDr6Step = 1u << 14;
constexpr uint32_t kDebugVector = 1, kBreakpointVector = 3;

// DR7 for the used slots (SDM vol. 3 18.2.4): Ln enables slot n; R/Wn at bit 16 + 4n is 00 for an
// instruction, 01 for writes, 11 for reads or writes (there is no read-only kind, so a read watch
// also fires on writes); LENn at bit 18 + 4n is 00, 01, 11, 10 for 1, 2, 4, 8 bytes. LE/GE (bits 8
// and 9) ask for exact data breakpoints, as the SDM recommends.
uint64_t dr7_for(const auto& slots) {
  uint64_t dr7 = 0;
  for (unsigned i = 0; i < slots.size(); ++i) {
    if (!slots[i].used) continue;
    bool exec = slots[i].kind == BreakKind::Hardware || slots[i].kind == BreakKind::Software;
    uint64_t rw = exec ? 0 : slots[i].kind == BreakKind::WriteWatch ? 1 : 3;
    uint64_t len = slots[i].len == 2 ? 1 : slots[i].len == 4 ? 3 : slots[i].len == 8 ? 2 : 0;
    dr7 |= uint64_t{1} << (2 * i) | rw << (16 + 4 * i) | len << (18 + 4 * i);
  }
  return dr7 ? dr7 | 0x300 : 0;
}

// What this nested (PVM) host does with KVM_SET_GUEST_DEBUG for guest code at CPL0, which its KVM
// runs in the instruction emulator (measured with gdb and the testprog guest, tests/gdb_test.cpp):
//   - KVM_GUESTDBG_SINGLESTEP works: each step exits with KVM_EXIT_DEBUG, #DB, DR6.BS set.
//   - Hardware breakpoints (KVM_GUESTDBG_USE_HW_BP, DR0-DR3 and DR7) work: #DB with DR6.Bn set, at
//     the instruction, before it runs.
//   - Software breakpoints do not: with KVM_GUESTDBG_USE_SW_BP the emulator still delivers the
//     int3's #BP to the guest (rip past the int3), never KVM_EXIT_DEBUG.
//   - Data breakpoints (DR7 R/W 01 or 11) do not fire: a write to the watched variable at CPL0
//     gives no exit. They are still set, for hosts that run the guest natively; gdb's software
//     watchpoints, which single-step, work here.
// So gdb's software breakpoints (Z0) take a free debug register first, which works on any host,
// and only the fifth and later become an int3; on this host those reach the guest as #BP. The
// int3 path is kept for hosts where #BP does exit (rip at, or rewound to, the int3).

}  // namespace

VcpuDebugger::VcpuDebugger(unsigned vcpus, const GuestMemory& mem, EventFd stop_event, uint32_t kvm_flags)
    : mem_(mem), kvm_flags_(kvm_flags), stop_event_(std::move(stop_event)), gate_(vcpus) {
  gate_.close();  // vCPUs wait for gdb's first resume
}

Result<std::unique_ptr<VcpuDebugger>> VcpuDebugger::create(unsigned vcpus, const GuestMemory& mem, uint32_t kvm_flags) {
  return std::unique_ptr<VcpuDebugger>(new VcpuDebugger(vcpus, mem, TRY(EventFd::create()), kvm_flags));
}

void VcpuDebugger::add_vcpu_hooks(VcpuHooks& hooks) {
  hooks.debug_gate = &gate_;
  hooks.debug = [this](Vcpu& v, const exit::Debug& d) { on_debug_exit(v, d); };
}

void VcpuDebugger::on_debug_exit(Vcpu& v, const exit::Debug& d) {
  stats_.debug_exits.fetch_add(1, std::memory_order_relaxed);
  StopEvent e{v.id(), StopEvent::Reason::Trap};
  std::unique_lock lock(mu_);
  if (d.exception == kBreakpointVector) {
    if (sw_.count(d.pc)) {
      e.reason = StopEvent::Reason::SoftwareBreak;
    } else if (sw_.count(d.pc - 1)) {
      // An int3 is a trap (SDM vol. 3 6.15, interrupt 3): should KVM report the address after it,
      // move rip back to the breakpoint, where gdb expects it (swbreak) and where the original
      // instruction runs once gdb has removed the int3.
      stats_.rewound_int3.fetch_add(1, std::memory_order_relaxed);
      if (auto r = v.fd().get_regs(); r) {
        r->rip -= 1;
        discard_error(v.fd().set_regs(*r), stats_.unreported_stops, "vCPU {}: rewinding rip to its int3", v.id());
      }
      e.reason = StopEvent::Reason::SoftwareBreak;
    }
  } else if (d.exception == kDebugVector) {
    for (unsigned i = 0; i < hw_.size(); ++i) {
      if (!(d.dr6 & (1u << i)) || !hw_[i].used) continue;
      if (hw_[i].kind == BreakKind::Hardware || hw_[i].kind == BreakKind::Software) {
        e.reason = hw_[i].kind == BreakKind::Hardware ? StopEvent::Reason::HardwareBreak : StopEvent::Reason::SoftwareBreak;
      } else {
        e.reason = StopEvent::Reason::Watch;
        e.watch_kind = hw_[i].kind;
        e.watch_addr = hw_[i].addr;
      }
      break;
    }
    if (e.reason == StopEvent::Reason::Trap && (d.dr6 & kDr6Step)) e.reason = StopEvent::Reason::Step;
  }
  lock.unlock();
  LOG_DEBUG("vCPU {}: debug exit, vector {} at {:#x}, dr6 {:#x}", v.id(), d.exception, d.pc, d.dr6);
  record_stop(e);
}

void VcpuDebugger::record_stop(const StopEvent& e) {
  std::lock_guard lock(mu_);
  if (released_) return;
  if (pending_) {
    stats_.unreported_stops.fetch_add(1, std::memory_order_relaxed);
    return;
  }
  pending_ = e;
  gate_.close();
  for (Vcpu* v : vcpus_) v->request_exit();
  discard_error(stop_event_.signal(), stats_.unreported_stops, "signalling the debugger's stop");
}

void VcpuDebugger::interrupt() { record_stop({0, StopEvent::Reason::Interrupt}); }

Result<StopEvent> VcpuDebugger::take_stop(std::chrono::milliseconds timeout) {
  discard_error(stop_event_.consume(), stats_.unreported_stops, "reading the debugger's stop eventfd");
  if (!gate_.wait_parked(timeout)) return make_error(ETIMEDOUT, "a vCPU did not stop within {} ms", timeout.count());
  std::lock_guard lock(mu_);
  if (!pending_) return make_error(ENOENT, "no stop is pending");
  return *pending_;
}

void VcpuDebugger::release() {
  std::lock_guard lock(mu_);
  released_ = true;
  gate_.open();
}

Result<void> VcpuDebugger::check_thread(unsigned thread) const {
  if (thread >= vcpus_.size()) return make_error(ESRCH, "no thread {}", thread + 1);
  return {};
}

Result<GdbRegisters> VcpuDebugger::read_registers(unsigned thread) {
  TRY(check_thread(thread));
  const VcpuFd& fd = vcpus_[thread]->fd();
  kvm_regs r = TRY(fd.get_regs());
  kvm_sregs s = TRY(fd.get_sregs());
  kvm_fpu f = TRY(fd.get_fpu());
  GdbRegisters g;
  g.gpr = {r.rax, r.rbx, r.rcx, r.rdx, r.rsi, r.rdi, r.rbp, r.rsp, r.r8, r.r9,
           r.r10, r.r11, r.r12, r.r13, r.r14, r.r15, r.rip};
  g.eflags = static_cast<uint32_t>(r.rflags);
  g.seg = {s.cs.selector, s.ss.selector, s.ds.selector, s.es.selector, s.fs.selector, s.gs.selector};
  for (unsigned i = 0; i < 8; ++i) std::memcpy(g.st[i].data(), f.fpr[i], 10);
  // KVM keeps the FXSAVE form of the tag word, one bit per register set when it is not empty; gdb
  // shows the full one, two bits per register, 11 for empty (SDM vol. 1 10.5.1.1).
  uint32_t tags = 0;
  for (unsigned i = 0; i < 8; ++i) tags |= (f.ftwx & (1u << i) ? 0u : 3u) << (2 * i);
  g.fpu_ctl = {f.fcw, f.fsw, tags, 0, static_cast<uint32_t>(f.last_ip), 0, static_cast<uint32_t>(f.last_dp), f.last_opcode};
  for (unsigned i = 0; i < 16; ++i) std::memcpy(g.xmm[i].data(), f.xmm[i], 16);
  g.mxcsr = f.mxcsr;
  return g;
}

Result<void> VcpuDebugger::write_registers(unsigned thread, const GdbRegisters& g) {
  GdbRegisters cur = TRY(read_registers(thread));
  if (g.seg != cur.seg) return make_error(EPERM, "segment selectors cannot be changed from gdb");
  const VcpuFd& fd = vcpus_[thread]->fd();
  kvm_regs r = TRY(fd.get_regs());
  __u64* slots[] = {&r.rax, &r.rbx, &r.rcx, &r.rdx, &r.rsi, &r.rdi, &r.rbp, &r.rsp, &r.r8,
                       &r.r9, &r.r10, &r.r11, &r.r12, &r.r13, &r.r14, &r.r15, &r.rip};
  for (unsigned i = 0; i < 17; ++i) *slots[i] = g.gpr[i];
  r.rflags = (r.rflags & ~uint64_t{0xffffffff}) | g.eflags;
  TRY(fd.set_regs(r));
  if (g.st == cur.st && g.fpu_ctl == cur.fpu_ctl && g.xmm == cur.xmm && g.mxcsr == cur.mxcsr) return {};
  kvm_fpu f = TRY(fd.get_fpu());
  for (unsigned i = 0; i < 8; ++i) std::memcpy(f.fpr[i], g.st[i].data(), 10);
  f.fcw = static_cast<uint16_t>(g.fpu_ctl[0]);
  f.fsw = static_cast<uint16_t>(g.fpu_ctl[1]);
  f.ftwx = 0;
  for (unsigned i = 0; i < 8; ++i) f.ftwx |= static_cast<uint8_t>(((g.fpu_ctl[2] >> (2 * i)) & 3) != 3 ? 1u << i : 0u);
  f.last_opcode = static_cast<uint16_t>(g.fpu_ctl[7]);
  for (unsigned i = 0; i < 16; ++i) std::memcpy(f.xmm[i], g.xmm[i].data(), 16);
  f.mxcsr = g.mxcsr;
  return fd.set_fpu(f);
}

template <class Fn>
Result<void> VcpuDebugger::for_each_page(unsigned thread, uint64_t gva, size_t len, Fn&& fn) {
  TRY(check_thread(thread));
  size_t done = 0;
  while (done < len) {
    uint64_t va = gva + done;
    size_t n = std::min<uint64_t>(len - done, kPage - va % kPage);
    kvm_translation t = TRY(vcpus_[thread]->fd().translate(va));
    if (!t.valid) return make_error(EFAULT, "guest virtual address {:#x} is not mapped", va);
    TRY(fn(GuestAddress(t.physical_address), done, n));
    done += n;
  }
  return {};
}

Result<void> VcpuDebugger::read_memory(unsigned thread, uint64_t gva, std::span<uint8_t> out) {
  return for_each_page(thread, gva, out.size(), [&](GuestAddress gpa, size_t off, size_t n) {
    return mem_.read(gpa, out.subspan(off, n));
  });
}

Result<void> VcpuDebugger::write_memory(unsigned thread, uint64_t gva, std::span<const uint8_t> in) {
  return for_each_page(thread, gva, in.size(), [&](GuestAddress gpa, size_t off, size_t n) {
    return mem_.write(gpa, in.subspan(off, n));
  });
}

Result<void> VcpuDebugger::insert_breakpoint(BreakKind kind, uint64_t addr, uint64_t len) {
  std::lock_guard lock(mu_);
  bool exec = kind == BreakKind::Hardware || kind == BreakKind::Software;
  // An instruction breakpoint is one byte; a data one 1, 2, 4 or 8 bytes at an address aligned to
  // its length (SDM vol. 3 18.2.5).
  if (!exec && ((len != 1 && len != 2 && len != 4 && len != 8) || addr % len))
    return make_error(EINVAL, "a watchpoint of {} bytes at {:#x} does not fit a debug register", len, addr);
  if (sw_.count(addr) && kind == BreakKind::Software) return {};
  for (auto& s : hw_)
    if (s.used && s.kind == kind && s.addr == addr) return {};
  // A software breakpoint takes a free debug register first (see the host notes above).
  for (auto& s : hw_) {
    if (s.used) continue;
    s = {true, kind, addr, exec ? 1 : len};
    return {};
  }
  if (kind != BreakKind::Software) return make_error(ENOSPC, "all four debug registers are in use");
  uint8_t orig;
  TRY(read_memory(0, addr, std::span(&orig, 1)));
  TRY(write_memory(0, addr, std::span(&kInt3, 1)));
  sw_[addr] = orig;
  return {};
}

Result<void> VcpuDebugger::remove_breakpoint(BreakKind kind, uint64_t addr, uint64_t) {
  std::lock_guard lock(mu_);
  if (auto it = sw_.find(addr); kind == BreakKind::Software && it != sw_.end()) {
    TRY(write_memory(0, addr, std::span(&it->second, 1)));
    sw_.erase(it);
    return {};
  }
  for (auto& s : hw_) {
    if (!s.used || s.kind != kind || s.addr != addr) continue;
    s.used = false;
    return {};
  }
  return make_error(ENOENT, "no hardware breakpoint at {:#x}", addr);
}

Result<void> VcpuDebugger::apply_debug(std::span<const ResumeAction> actions) {
  std::lock_guard lock(mu_);
  uint64_t dr7 = dr7_for(hw_);
  for (size_t i = 0; i < vcpus_.size(); ++i) {
    kvm_guest_debug dbg{};
    bool step = i < actions.size() && actions[i] == ResumeAction::Step;
    if (!sw_.empty() || dr7 || step) {
      // #BP exits only while an int3 of ours is in memory: the guest's own int3s stay its own.
      dbg.control = KVM_GUESTDBG_ENABLE | (sw_.empty() ? 0 : KVM_GUESTDBG_USE_SW_BP);
      // A step with an interrupt pending would land in its handler, not on the next instruction;
      // KVM_GUESTDBG_BLOCKIRQ holds interrupts back during the step where KVM offers it.
      if (step) dbg.control |= KVM_GUESTDBG_SINGLESTEP | (kvm_flags_ & KVM_GUESTDBG_BLOCKIRQ);
      if (dr7) {
        dbg.control |= KVM_GUESTDBG_USE_HW_BP;
        for (unsigned s = 0; s < hw_.size(); ++s) dbg.arch.debugreg[s] = hw_[s].used ? hw_[s].addr : 0;
        dbg.arch.debugreg[7] = dr7;
      }
    }
    TRY(vcpus_[i]->fd().set_guest_debug(dbg));
  }
  return {};
}

Result<void> VcpuDebugger::resume(std::span<const ResumeAction> actions) {
  TRY(apply_debug(actions));
  std::lock_guard lock(mu_);
  if (released_) return {};
  pending_.reset();
  gate_.open();
  return {};
}

Result<void> VcpuDebugger::detach() {
  {
    std::lock_guard lock(mu_);
    for (auto& [addr, byte] : sw_) TRY(write_memory(0, addr, std::span(&byte, 1)));
    sw_.clear();
    hw_ = {};
  }
  return resume({});
}

void VcpuDebugger::kill() {
  if (kill_) kill_();
  release();
}

}  // namespace evmm
