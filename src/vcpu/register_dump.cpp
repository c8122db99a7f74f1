#include "vcpu/register_dump.h"

#include <fmt/format.h>

#include <algorithm>

namespace evmm {

namespace {

constexpr uint64_t kPage = 4096;
constexpr uint64_t kEferLma = 1u << 10;

bool long_mode(const kvm_sregs& s) { return (s.efer & kEferLma) && s.cs.l; }

// Bytes from linear, a page at a time through KVM_TRANSLATE, stopping at the first page that does
// not translate or is not RAM.
std::vector<uint8_t> read_code(const VcpuFd& vcpu, const GuestMemory& mem, uint64_t linear, size_t len) {
  std::vector<uint8_t> out;
  while (out.size() < len) {
    auto t = vcpu.translate(linear);
    if (!t || !t->valid) break;
    size_t n = std::min<size_t>(len - out.size(), kPage - (linear % kPage));
    std::vector<uint8_t> piece(n);
    if (!mem.read(GuestAddress(t->physical_address), piece)) break;
    out.insert(out.end(), piece.begin(), piece.end());
    linear += n;
  }
  return out;
}

std::string flags_letters(uint64_t rflags) {
  // The arithmetic flags and IF/DF/TF, high to low as `info registers` orders them.
  static constexpr struct { unsigned bit; char c; } kBits[] = {
      {11, 'O'}, {10, 'D'}, {9, 'I'}, {8, 'T'}, {7, 'S'}, {6, 'Z'}, {4, 'A'}, {2, 'P'}, {0, 'C'}};
  std::string out;
  for (auto b : kBits) out += (rflags >> b.bit & 1) ? b.c : '-';
  return out;
}

std::string segment(const char* name, const kvm_segment& s) {
  return fmt::format("  {:<3}={:04x} base={:016x} limit={:08x} type={:x} s={} dpl={} p={} db={} l={} g={} avl={}{}\n",
                     name, s.selector, s.base, s.limit, s.type, s.s, s.dpl, s.present, s.db, s.l, s.g, s.avl,
                     s.unusable ? " unusable" : "");
}

const char* mp_state_name(uint32_t s) {
  switch (s) {
    case KVM_MP_STATE_RUNNABLE: return "runnable";
    case KVM_MP_STATE_UNINITIALIZED: return "uninitialized (waiting for INIT/SIPI)";
    case KVM_MP_STATE_INIT_RECEIVED: return "INIT received";
    case KVM_MP_STATE_HALTED: return "halted";
    case KVM_MP_STATE_SIPI_RECEIVED: return "SIPI received";
    default: return "other";
  }
}

std::string events_line(const kvm_vcpu_events& e) {
  std::string out = "  events:";
  bool any = false;
  if (e.exception.injected || e.exception.pending) {
    out += fmt::format(" exception {} vector {}", e.exception.injected ? "injected" : "pending", e.exception.nr);
    if (e.exception.has_error_code) out += fmt::format(" error {:#x}", e.exception.error_code);
    any = true;
  }
  if (e.interrupt.injected) {
    out += fmt::format(" interrupt injected vector {}{}", e.interrupt.nr, e.interrupt.soft ? " (soft)" : "");
    any = true;
  }
  if (e.interrupt.shadow) out += " interrupt-shadow", any = true;
  if (e.nmi.injected || e.nmi.pending) out += fmt::format(" nmi {}", e.nmi.injected ? "injected" : "pending"), any = true;
  if (e.nmi.masked) out += " nmi-masked", any = true;
  if ((e.flags & KVM_VCPUEVENT_VALID_TRIPLE_FAULT) && e.triple_fault.pending) out += " triple-fault", any = true;
  if (!any) out += " none";
  return out + "\n";
}

}  // namespace

Result<VcpuSnapshot> snapshot_vcpu(const VcpuFd& vcpu, const GuestMemory& mem) {
  VcpuSnapshot s;
  s.regs = TRY(vcpu.get_regs());
  s.sregs = TRY(vcpu.get_sregs());
  if (auto e = vcpu.get_vcpu_events()) s.events = *e;
  if (auto m = vcpu.get_mp_state()) s.mp_state = m->mp_state;
  s.code_linear = s.sregs.cs.base + s.regs.rip;
  if (!long_mode(s.sregs)) s.code_linear &= 0xffffffffu;
  s.code = read_code(vcpu, mem, s.code_linear, kCodeBytes);
  return s;
}

std::string format_register_dump(unsigned vcpu_id, const VcpuSnapshot& s) {
  const kvm_regs& r = s.regs;
  const kvm_sregs& sr = s.sregs;
  std::string out = fmt::format("  vCPU {}: {}\n", vcpu_id,
                                s.mp_state ? mp_state_name(*s.mp_state) : "MP state unreadable");
  out += fmt::format("  RAX={:016x} RBX={:016x} RCX={:016x} RDX={:016x}\n", r.rax, r.rbx, r.rcx, r.rdx);
  out += fmt::format("  RSI={:016x} RDI={:016x} RBP={:016x} RSP={:016x}\n", r.rsi, r.rdi, r.rbp, r.rsp);
  out += fmt::format("  R8 ={:016x} R9 ={:016x} R10={:016x} R11={:016x}\n", r.r8, r.r9, r.r10, r.r11);
  out += fmt::format("  R12={:016x} R13={:016x} R14={:016x} R15={:016x}\n", r.r12, r.r13, r.r14, r.r15);
  out += fmt::format("  RIP={:016x} RFL={:08x} [{}] CPL={} {}\n", r.rip, r.rflags, flags_letters(r.rflags),
                     sr.cs.dpl, long_mode(sr) ? "64-bit" : (sr.cr0 & 1) ? (sr.cs.db ? "32-bit" : "16-bit pm") : "real mode");
  out += segment("CS", sr.cs) + segment("SS", sr.ss) + segment("DS", sr.ds) + segment("ES", sr.es) +
         segment("FS", sr.fs) + segment("GS", sr.gs) + segment("TR", sr.tr) + segment("LDT", sr.ldt);
  out += fmt::format("  GDT=base {:016x} limit {:04x}  IDT=base {:016x} limit {:04x}\n", sr.gdt.base, sr.gdt.limit,
                     sr.idt.base, sr.idt.limit);
  out += fmt::format("  CR0={:08x} CR2={:016x} CR3={:016x} CR4={:08x} CR8={:x}\n", sr.cr0, sr.cr2, sr.cr3, sr.cr4, sr.cr8);
  out += fmt::format("  EFER={:016x} APIC_BASE={:016x}\n", sr.efer, sr.apic_base);
  out += s.events ? events_line(*s.events) : std::string("  events: unreadable\n");
  if (s.code.empty()) {
    out += fmt::format("  code at {:#x}: not mapped to RAM\n", s.code_linear);
  } else {
    out += fmt::format("  code at {:#x}:", s.code_linear);
    for (uint8_t b : s.code) out += fmt::format(" {:02x}", b);
    out += "\n";
  }
  return out;
}

}  // namespace evmm
