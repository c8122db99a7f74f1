#include "vcpu/cpu_setup.h"

#include <asm/kvm_para.h>

#include <bit>
#include <cstring>

#include "vcpu/cpuid_timing.h"

namespace evmm {

namespace {

constexpr uint32_t kMsrMiscEnable = 0x1a0;
constexpr uint32_t kMsrMtrrDefType = 0x2ff;

unsigned ceil_log2(unsigned n) { return n <= 1 ? 0 : std::bit_width(n - 1); }

bool is_intel(CpuidTable& t) {
  auto* l0 = t.find(0);
  return l0 && l0->ebx == 0x756e6547 && l0->edx == 0x49656e69 && l0->ecx == 0x6c65746e;  // "GenuineIntel"
}

// Leaves 0xB and 0x1F (Intel SDM Vol. 2A, CPUID): an SMT level of one thread per core, then a core
// level holding every vCPU; EDX is the x2APIC ID at every level.
void set_extended_topology(CpuidTable& t, uint32_t leaf, unsigned id, unsigned cpus) {
  auto& e = t.entries();
  std::erase_if(e, [&](const kvm_cpuid_entry2& x) { return x.function == leaf; });
  auto entry = [&](uint32_t index, uint32_t eax, uint32_t ebx, uint32_t level_type) {
    kvm_cpuid_entry2 x{};
    x.function = leaf;
    x.index = index;
    x.flags = KVM_CPUID_FLAG_SIGNIFCANT_INDEX;
    x.eax = eax;
    x.ebx = ebx;
    x.ecx = index | (level_type << 8);
    x.edx = id;
    e.push_back(x);
  };
  entry(0, 0, 1, 1);                     // SMT
  entry(1, ceil_log2(cpus), cpus, 2);    // core
  entry(2, 0, 0, 0);                     // invalid: ends the enumeration
}

// KVM's paravirtual features that a guest uses through `vmcall`: PV_UNHALT (KVM_HC_KICK_CPU),
// PV_SEND_IPI (KVM_HC_SEND_IPI) and PV_SCHED_YIELD (KVM_HC_SCHED_YIELD). Where KVM runs guest CPL0
// code in its instruction emulator (README, "Host facts"), the emulator does not make the
// hypercall: it rewrites the vmcall to the vendor's form and restarts it, expecting the CPU to
// trap it natively, which never happens there. The vCPU re-executes the vmcall forever (Linux
// 6.1's first PV IPI, at "x86: Booting SMP configuration"). Without them the guest sends IPIs
// through the local APIC and spins in its locks, which work on every host.
constexpr uint32_t kHypercallFeatures =
    (1u << KVM_FEATURE_PV_UNHALT) | (1u << KVM_FEATURE_PV_SEND_IPI) | (1u << KVM_FEATURE_PV_SCHED_YIELD);

// "KVMKVMKVM\0\0\0" in leaf BASE's EBX, ECX, EDX: KVM's leaves are there (0x40000000, or 0x40000100
// behind Xen's).
bool is_kvm_base(const kvm_cpuid_entry2* e) {
  return e && e->ebx == 0x4b4d564b && e->ecx == 0x564b4d56 && e->edx == 0x0000004d;
}

void hide_hypercall_features(CpuidTable& t) {
  for (uint32_t base : {0x40000000u, 0x40000100u}) {
    if (!is_kvm_base(t.find(base))) continue;
    if (auto* features = t.find(base + 1)) features->eax &= ~kHypercallFeatures;
  }
}

}  // namespace

CpuidTable cpuid_for_vcpu(const CpuidTable& supported, unsigned id, unsigned cpus) {
  CpuidTable t = supported;
  uint32_t max_basic = t.find(0) ? t.find(0)->eax : 0;
  if (auto* l1 = t.find(1)) {
    unsigned logical = 1u << ceil_log2(cpus);
    l1->ebx = (l1->ebx & 0x0000ffff) | (logical << 16) | (id << 24);
    if (cpus > 1) l1->edx |= 1u << 28;  // HTT: the package holds more than one logical processor
    else l1->edx &= ~(1u << 28);
    l1->ecx |= 1u << 31;                // running under a hypervisor
  }
  hide_hypercall_features(t);
  if (max_basic >= 0xb) set_extended_topology(t, 0xb, id, cpus);
  if (max_basic >= 0x1f && t.find(0x1f)) set_extended_topology(t, 0x1f, id, cpus);
  if (is_intel(t)) {
    // Leaf 4: cores per package in EAX[31:26]; each cache shared by one thread.
    for (auto& e : t.entries())
      if (e.function == 4) e.eax = (e.eax & 0x3fff) | ((cpus - 1) << 26);
  } else {
    // AMD (APM Vol. 3, E.4): CmpLegacy, the core count and APIC ID size, and the extended APIC ID.
    if (auto* e = t.find(0x80000001)) {
      if (cpus > 1) e->ecx |= 1u << 1;
      else e->ecx &= ~(1u << 1);
    }
    if (auto* e = t.find(0x80000008)) e->ecx = (e->ecx & ~0xf0ffu) | (ceil_log2(cpus) << 12) | (cpus - 1);
    if (auto* e = t.find(0x8000001e)) {
      e->eax = id;
      e->ebx = (e->ebx & ~0xffffu) | (id & 0xff);  // core id; one thread per core
      e->ecx &= ~0x7ffu;                             // node 0 of 1
    }
  }
  return t;
}

Result<void> configure_vcpu(const VcpuFd& vcpu, const CpuidTable& supported, unsigned id, unsigned cpus) {
  CpuidTable cpuid = cpuid_for_vcpu(supported, id, cpus);
  // Without KVM_GET_TSC_KHZ the guest calibrates its TSC itself, as it would on any hypervisor.
  if (auto khz = vcpu.get_tsc_khz(); khz) add_cpuid_timing_leaf(cpuid, *khz);
  TRY_CTX(vcpu.set_cpuid2(cpuid), fmt::format("vCPU {}", id));

  // Fast strings on; MTRRs on with write-back as the default type, as firmware leaves them.
  const kvm_msr_entry msrs[] = {
      {kMsrMiscEnable, 0, 1},
      {kMsrMtrrDefType, 0, (1u << 11) | 6},
  };
  TRY_CTX(vcpu.set_msrs(msrs), fmt::format("vCPU {}", id));

  kvm_fpu fpu{};
  fpu.fcw = 0x37f;
  fpu.mxcsr = 0x1f80;
  TRY(vcpu.set_fpu(fpu));

  // LINT0 as ExtINT (the PIC's output) and LINT1 as NMI, as the MP spec's virtual-wire mode has it.
  kvm_lapic_state lapic = TRY(vcpu.get_lapic());
  auto set_lvt = [&](size_t off, uint32_t mode) {
    uint32_t v;
    std::memcpy(&v, lapic.regs + off, 4);
    v = (v & ~0x700u & ~(1u << 16)) | (mode << 8);
    std::memcpy(lapic.regs + off, &v, 4);
  };
  set_lvt(0x350, 7);  // LVT LINT0: ExtINT
  set_lvt(0x360, 4);  // LVT LINT1: NMI
  TRY(vcpu.set_lapic(lapic));
  return {};
}

Result<void> apply_entry_state(const VcpuFd& vcpu, const EntryState& state) {
  // Read first so that what the state does not name (LDT, TR, APIC base) keeps KVM's reset values.
  kvm_sregs sregs = TRY(vcpu.get_sregs());
  sregs.cs = state.cs;
  sregs.ds = sregs.es = sregs.fs = sregs.gs = sregs.ss = state.data;
  sregs.gdt = state.gdt;
  sregs.idt = state.idt;
  sregs.cr0 = state.cr0;
  sregs.cr2 = state.cr2;
  sregs.cr3 = state.cr3;
  sregs.cr4 = state.cr4;
  sregs.efer = state.efer;
  TRY(vcpu.set_sregs(sregs));
  return vcpu.set_regs(state.regs);
}

namespace {

kvm_segment real_segment(uint16_t selector, bool code) {
  kvm_segment s{};
  s.selector = selector;
  s.base = uint64_t{selector} << 4;
  s.limit = 0xffff;
  s.type = code ? 0xb : 0x3;  // execute/read accessed, read/write accessed
  s.present = 1;
  s.s = 1;
  return s;
}

}  // namespace

EntryState real_mode_state(uint16_t cs, uint16_t ip) {
  EntryState s;
  s.cs = real_segment(cs, true);
  s.data = real_segment(0, false);
  s.gdt.limit = 0xffff;
  s.idt.limit = 0x3ff;  // the real-mode IVT at 0
  s.cr0 = 0x10;         // ET; protection and paging off
  s.regs.rflags = 0x2;
  s.regs.rip = ip;
  return s;
}

Result<void> set_real_mode_state(const VcpuFd& vcpu, uint16_t cs, uint16_t ip) {
  return apply_entry_state(vcpu, real_mode_state(cs, ip));
}

Result<void> set_init_registers(const VcpuFd& vcpu) {
  // SDM vol. 3 s9.1.1: after INIT, CS 0xF000 with base 0xFFFF0000 and IP 0xFFF0; a SIPI then sets
  // CS:IP to the vector's page.
  EntryState s = real_mode_state(0xf000, 0xfff0);
  s.cs.base = 0xffff0000;
  return apply_entry_state(vcpu, s);
}

}  // namespace evmm
