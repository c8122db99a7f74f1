#include "boot/cpu_entry.h"

#include "memory/layout.h"

namespace evmm {

namespace {

kvm_segment flat_segment(uint16_t selector, bool code, bool long_mode) {
  kvm_segment s{};
  s.base = 0;
  s.limit = 0xffffffff;
  s.selector = selector;
  s.type = code ? 0xb : 0x3;  // execute/read, accessed; read/write, accessed
  s.present = 1;
  s.s = 1;
  s.g = 1;
  s.l = code && long_mode;
  s.db = !(code && long_mode);
  return s;
}

// Identity-maps the first 4 GiB with 2 MiB pages at pml4 for a 64-bit entry.
Result<void> write_identity_page_tables(const GuestMemory& mem, uint64_t pml4) {
  const uint64_t pdpt = pml4 + 0x1000, pd = pml4 + 0x2000;
  TRY(mem.fill(GuestAddress(pml4), 0, 6 * 0x1000));
  TRY(mem.write_obj<uint64_t>(GuestAddress(pml4), pdpt | 0x3));
  for (uint64_t i = 0; i < 4; ++i) {
    TRY(mem.write_obj<uint64_t>(GuestAddress(pdpt + i * 8), (pd + i * 0x1000) | 0x3));
    for (uint64_t j = 0; j < 512; ++j) {
      uint64_t addr = (i << 30) | (j << 21);
      TRY(mem.write_obj<uint64_t>(GuestAddress(pd + i * 0x1000 + j * 8), addr | 0x83));  // P, RW, PS
    }
  }
  return {};
}

}  // namespace

Result<void> write_boot_tables(const GuestMemory& mem, const BootEntry& entry) {
  const EntryMode mode = entry.mode;
  // Flat 4 GiB descriptors (Intel SDM Vol. 3A, 3.4.5). Selector 0x10 is code, 0x18 data, as the
  // Linux boot protocol's __BOOT_CS and __BOOT_DS.
  constexpr uint64_t kCode32 = 0x00cf9b000000ffff, kCode64 = 0x00af9b000000ffff, kData = 0x00cf93000000ffff;
  const uint64_t gdt[4] = {0, 0, mode == EntryMode::Long64 ? kCode64 : kCode32, kData};
  TRY(mem.write_obj(GuestAddress(entry.gdt), gdt));
  if (mode == EntryMode::Long64) TRY(write_identity_page_tables(mem, entry.page_tables));
  return {};
}

EntryState boot_entry_state(const BootEntry& entry) {
  EntryState s;
  bool long_mode = entry.mode == EntryMode::Long64;
  s.cs = flat_segment(0x10, true, long_mode);
  s.data = flat_segment(0x18, false, false);
  s.gdt.base = entry.gdt;
  s.gdt.limit = 4 * 8 - 1;
  // Multiboot and PVH: protected mode, paging off (CR0.ET is hard-wired on every CPU since the 486).
  s.cr0 = 0x11;
  if (long_mode) {
    s.cr0 |= 0x80000000;  // PG
    s.cr3 = entry.page_tables;
    s.cr4 = 0x20;         // PAE
    s.efer = 0x500;       // LME | LMA
  }
  s.regs.rflags = 0x2;  // reserved bit 1; IF clear
  s.regs.rip = entry.rip;
  s.regs.rax = entry.rax;
  s.regs.rbx = entry.rbx;
  s.regs.rsi = entry.rsi;
  s.regs.rsp = entry.rsp;
  return s;
}

Result<void> set_entry_state(const VcpuFd& vcpu, const BootEntry& entry) {
  return apply_entry_state(vcpu, boot_entry_state(entry));
}

}  // namespace evmm
