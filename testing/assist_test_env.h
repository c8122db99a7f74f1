// Test scaffolding for the emulation assists: a fake AssistEnv over real GuestMemory with real
// IA-32e page tables (identity by default, or a page map), and CPU states for the modes a CPL 0
// guest runs in.
#pragma once

#include "kvm/kvm_uapi.h"

#include <cstdint>
#include <initializer_list>
#include <map>
#include <stdexcept>
#include <vector>

#include "vcpu/assist.h"

namespace evmm::assist_testing {

// Page tables live in their own region of guest-physical memory, above the RAM the tests use.
inline constexpr uint64_t kTableBase = 0x40000000, kTableBytes = 2 << 20;
inline constexpr uint64_t kPml4 = kTableBase;  // the CR3 the CPU states below load
// With CR4.LA57, load this CR3 instead: a PML5 table whose first entry holds the PML4 above.
inline constexpr uint64_t kPml5 = kTableBase + kTableBytes - 4096;
// Page-table entry bits (SDM vol. 3 table 4-19).
inline constexpr uint64_t kPteP = 1, kPteW = 2, kPteU = 4, kPteA = 0x20, kPteD = 0x40, kPtePs = 0x80;

class FakeEnv : public AssistEnv {
 public:
  // Starts with the first GiB identity-mapped, writable, by one 1 GiB page.
  explicit FakeEnv(uint64_t bytes = 1 << 20) : memory_(make_memory(bytes)), ram_bytes_(bytes) {
    reset_tables(true);
    // The FPU as after reset and fninit: FCW 037FH, MXCSR 1F80H, x87 and SSE in use.
    fpu[0] = 0x7f;
    fpu[1] = 0x03;
    fpu[24] = 0x80;
    fpu[25] = 0x1f;
    fpu[512] = 3;
  }

  const GuestMemory& memory() override { return memory_; }
  unsigned physical_address_bits() override { return 46; }
  Result<void> flush_tlb() override {
    ++tlb_flushes;
    return {};
  }
  Result<uint64_t> read_msr(uint32_t index) override {
    auto it = msrs.find(index);
    if (it == msrs.end()) return make_error(EIO, "MSR {:#x} not readable", index);
    return it->second;
  }
  Result<std::vector<uint8_t>> read_fpu() override {
    if (fpu.empty()) return make_error(EIO, "no FPU state in this fake");
    return fpu;
  }
  Result<void> write_fpu(std::span<const uint8_t> area) override {
    if (area.size() != fpu.size()) return make_error(EINVAL, "FPU area of {} bytes, expected {}", area.size(), fpu.size());
    fpu.assign(area.begin(), area.end());
    ++fpu_writes;
    return {};
  }
  Result<uint64_t> read_xcr0() override { return xcr0; }
  Result<void> write_xcr0(uint64_t value) override {
    // KVM refuses XCR0 values without x87 or beyond what it supports (kvm_set_xcr).
    if (!(value & 1) || (value & ~xcr0_supported)) return make_error(EINVAL, "XCR0 {:#x} refused", value);
    xcr0 = value;
    return {};
  }

  // Switches to 4 KiB mappings: from the first call on, only mapped pages translate. flags are
  // the leaf's; the tables above it allow everything.
  void map(uint64_t gva, uint64_t gpa, uint64_t flags = kPteP | kPteW) {
    if (identity_) reset_tables(false);
    uint64_t table = kPml4;
    for (int level = 4; level > 1; --level) {
      uint64_t slot = table + ((gva >> (12 + 9 * (level - 1))) & 511) * 8;
      uint64_t e = peek_le(slot, 8);
      if (!(e & kPteP)) {
        e = alloc_table() | kPteP | kPteW | kPteU;
        poke_le(slot, e, 8);
      }
      table = e & 0x000ffffffffff000ull;
    }
    poke_le(table + ((gva >> 12) & 511) * 8, (gpa & ~0xfffull) | flags, 8);
  }
  void map_identity(uint64_t gpa, uint64_t pages, uint64_t flags = kPteP | kPteW) {
    for (uint64_t i = 0; i < pages; ++i) map(gpa + i * 4096, gpa + i * 4096, flags);
  }
  // The guest-physical address of gva's 4 KiB leaf entry (after map()), to check A and D.
  uint64_t leaf_entry(uint64_t gva) {
    uint64_t table = kPml4;
    for (int level = 4; level > 1; --level)
      table = peek_le(table + ((gva >> (12 + 9 * (level - 1))) & 511) * 8, 8) & 0x000ffffffffff000ull;
    return table + ((gva >> 12) & 511) * 8;
  }

  void poke(uint64_t gpa, std::initializer_list<uint8_t> bytes) { poke(gpa, std::vector<uint8_t>(bytes)); }
  void poke(uint64_t gpa, const std::vector<uint8_t>& bytes) {
    if (!memory_.write(GuestAddress(gpa), bytes)) throw std::runtime_error("poke outside guest memory");
  }
  void poke_le(uint64_t gpa, uint64_t value, unsigned bytes) {
    std::vector<uint8_t> b;
    for (unsigned i = 0; i < bytes; ++i) b.push_back(static_cast<uint8_t>(value >> (8 * i)));
    poke(gpa, b);
  }
  uint64_t peek_le(uint64_t gpa, unsigned bytes) {
    std::vector<uint8_t> b(bytes);
    if (!memory_.read(GuestAddress(gpa), b)) throw std::runtime_error("peek outside guest memory");
    uint64_t v = 0;
    for (unsigned i = 0; i < bytes; ++i) v |= uint64_t{b[i]} << (8 * i);
    return v;
  }
  // The RAM the tests use, without the page tables.
  std::vector<uint8_t> snapshot() {
    std::vector<uint8_t> all(ram_bytes_);
    if (!memory_.read(GuestAddress(0), all)) throw std::runtime_error("snapshot failed");
    return all;
  }

  std::map<uint32_t, uint64_t> msrs;
  int tlb_flushes = 0;
  std::vector<uint8_t> fpu = std::vector<uint8_t>(4096);  // the XSAVE area read_fpu returns; empty: reading fails
  int fpu_writes = 0;
  uint64_t xcr0 = 3, xcr0_supported = 7;

 private:
  static GuestMemory make_memory(uint64_t bytes) {
    auto m = GuestMemory::create({{GuestAddress(0), bytes}, {GuestAddress(kTableBase), kTableBytes}});
    if (!m) throw std::runtime_error(m.error().message());
    return std::move(*m);
  }
  void reset_tables(bool identity) {
    std::vector<uint8_t> zero(kTableBytes);
    poke(kTableBase, zero);
    next_table_ = kTableBase + 4096;
    identity_ = identity;
    poke_le(kPml5, kPml4 | kPteP | kPteW | kPteU, 8);
    if (!identity) return;
    uint64_t pdpt = alloc_table();
    poke_le(kPml4, pdpt | kPteP | kPteW, 8);
    poke_le(pdpt, kPteP | kPteW | kPtePs, 8);  // 0 to 1 GiB
  }
  uint64_t alloc_table() {
    if (next_table_ >= kPml5) throw std::runtime_error("out of page tables");
    uint64_t t = next_table_;
    next_table_ += 4096;
    return t;
  }

  GuestMemory memory_;
  uint64_t ram_bytes_;
  bool identity_ = true;
  uint64_t next_table_ = 0;
};

// GDT entries the tests load, written out as raw descriptors (SDM vol. 3 figure 3-8) so that they
// do not share an encoder with the code under test. The values are those Linux uses.
inline constexpr uint64_t kCode64 = 0x00af9b000000ffff;          // base 0, 4 GiB, L=1, DPL 0, accessed
inline constexpr uint64_t kCode64Unaccessed = 0x00af9a000000ffff;
inline constexpr uint64_t kCode64Dpl3 = 0x00affb000000ffff;
inline constexpr uint64_t kCode64NotPresent = 0x00af1b000000ffff;
inline constexpr uint64_t kCode32 = 0x00cf9b000000ffff;          // base 0, 4 GiB, D=1
inline constexpr uint64_t kData = 0x00cf93000000ffff;
inline constexpr uint64_t kCode32Based = 0x12409b3456781fff;     // base 0x12345678, limit 0x1fff, D=1

// Selectors of the GDT that World writes.
enum Sel : uint16_t {
  kSelCode64 = 0x08, kSelCode64Current = 0x10, kSelData = 0x18, kSelCode32 = 0x20,
  kSelCode64Unaccessed = 0x28, kSelCode64Dpl3 = 0x30, kSelCode64NotPresent = 0x38, kSelCode32Based = 0x40,
};

inline kvm_segment flat_segment(uint16_t selector, uint8_t type, bool l, bool db) {
  kvm_segment s{};
  s.limit = 0xffffffff;
  s.selector = selector;
  s.type = type;
  s.present = 1;
  s.db = db;
  s.s = 1;
  s.l = l;
  s.g = 1;
  return s;
}

// The tables World writes: GDT at 0x1000, IDT at 0x2000, TSS at 0x3000; the stack is below 0x8000
// (each identity-mapped unless a test maps otherwise).
inline constexpr uint64_t kGdtBase = 0x1000, kIdtBase = 0x2000, kTssBase = 0x3000;

// 64-bit mode at CPL 0, as Linux runs: paging on, EFER.LMA, CS.L.
inline CpuState long_mode_state() {
  CpuState cpu{};
  cpu.regs.rflags = 0x202;  // IF and the reserved bit 1
  cpu.regs.rip = 0xffffffff81001000;
  cpu.regs.rsp = 0x7ff8;
  cpu.sregs.cs = flat_segment(kSelCode64Current, 0xb, true, false);
  cpu.sregs.ss = cpu.sregs.ds = cpu.sregs.es = flat_segment(kSelData, 0x3, false, true);
  cpu.sregs.cr0 = 0x80050033;
  cpu.sregs.cr3 = kPml4;
  cpu.sregs.cr4 = 0x20;
  cpu.sregs.efer = 0xd01;
  cpu.sregs.gdt = {kGdtBase, 0x7f, {}};
  cpu.sregs.idt = {kIdtBase, 0xfff, {}};
  cpu.sregs.tr.base = kTssBase;
  cpu.sregs.tr.limit = 0x67;
  cpu.sregs.tr.selector = 0x50;
  cpu.sregs.tr.type = 0xb;
  cpu.sregs.tr.present = 1;
  return cpu;
}

// 32-bit protected mode, paging off, flat segments.
inline CpuState protected_mode_state() {
  CpuState cpu = long_mode_state();
  cpu.regs.rip = 0x1000;
  cpu.regs.rsp = 0x9000;
  cpu.sregs.cs = flat_segment(kSelCode32, 0xb, false, true);
  cpu.sregs.cr0 = 0x11;
  cpu.sregs.cr4 = 0;
  cpu.sregs.efer = 0;
  cpu.sregs.idt = {kIdtBase, 0x7ff, {}};
  return cpu;
}

// Real-address mode as after reset, IVT at 0.
inline CpuState real_mode_state() {
  CpuState cpu = long_mode_state();
  cpu.regs.rip = 0x100;
  cpu.regs.rsp = 0x7000;
  cpu.sregs.cs = flat_segment(0xf000, 0xb, false, false);
  cpu.sregs.cs.base = 0xf0000;
  cpu.sregs.cs.limit = 0xffff;
  cpu.sregs.cs.g = 0;
  cpu.sregs.ss = cpu.sregs.cs;
  cpu.sregs.ss.selector = 0;
  cpu.sregs.ss.base = 0;
  cpu.sregs.ss.type = 0x3;
  cpu.sregs.cr0 = 0x10;
  cpu.sregs.cr4 = 0;
  cpu.sregs.efer = 0;
  cpu.sregs.idt = {0, 0x3ff, {}};
  return cpu;
}

// Writes the GDT entries above at kGdtBase.
inline void write_gdt(FakeEnv& env) {
  for (auto [sel, desc] : std::initializer_list<std::pair<uint16_t, uint64_t>>{
           {kSelCode64, kCode64}, {kSelCode64Current, kCode64}, {kSelData, kData}, {kSelCode32, kCode32},
           {kSelCode64Unaccessed, kCode64Unaccessed}, {kSelCode64Dpl3, kCode64Dpl3},
           {kSelCode64NotPresent, kCode64NotPresent}, {kSelCode32Based, kCode32Based}})
    env.poke_le(kGdtBase + sel, desc, 8);
}

// A guest with its tables in low memory, in one of the states above.
struct World {
  static constexpr uint64_t kGdt = kGdtBase, kIdt = kIdtBase, kTss = kTssBase;

  FakeEnv env;
  CpuState cpu{};

  World() { write_gdt(env); }

  void long_mode() { cpu = long_mode_state(); }
  void protected_mode() { cpu = protected_mode_state(); }
  void real_mode() { cpu = real_mode_state(); }

  // A 64-bit IDT gate (SDM vol. 3 figure 6-8); attr is byte 5: 0x8e interrupt gate, 0x8f trap gate.
  void gate64(uint8_t vector, uint64_t offset, uint16_t selector, uint8_t attr, uint8_t ist = 0) {
    env.poke_le(kIdt + vector * 16ull, (offset & 0xffff) | uint64_t{selector} << 16 | uint64_t{ist} << 32 |
                                           uint64_t{attr} << 40 | ((offset >> 16) & 0xffff) << 48, 8);
    env.poke_le(kIdt + vector * 16ull + 8, offset >> 32, 8);
  }
  // A legacy IDT gate (SDM vol. 3 figure 6-2).
  void gate32(uint8_t vector, uint32_t offset, uint16_t selector, uint8_t attr) {
    env.poke_le(kIdt + vector * 8ull, (offset & 0xffff) | uint64_t{selector} << 16 | uint64_t{attr} << 40 |
                                          uint64_t{offset >> 16} << 48, 8);
  }

  x86::AssistResult<AssistKind> run(std::initializer_list<uint8_t> insn) {
    std::vector<uint8_t> b(insn);
    return complete_instruction(b, cpu, env);
  }
};

}  // namespace evmm::assist_testing
