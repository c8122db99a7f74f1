#include "vcpu/cpu_setup.h"

#include <gtest/gtest.h>

#include "testing/cpuid_leaf.h"

namespace evmm {
namespace {

using ::evmm::testing::leaf;

// A table shaped like KVM_GET_SUPPORTED_CPUID on an AMD host.
CpuidTable amd_table() {
  return CpuidTable({
      leaf(0, 0x10, 0x68747541, 0x444d4163, 0x69746e65),  // "AuthenticAMD"
      leaf(1, 0x00a00f11, 0x00000800, 0x7ed8320b, 0x178bfbff),
      leaf(0xb, 1, 1, 0x100, 0),
      leaf(0x80000001, 0, 0, 0x75c237ff, 0x2fd3fbff),
      leaf(0x80000008, 0x3030, 0, 0x1007, 0),
      leaf(0x8000001e, 7, 0x103, 0x303, 0),
  });
}

TEST(CpuSetup, ApicIdsAndTopologyPerVcpu) {
  const unsigned cpus = 3;
  for (unsigned id = 0; id < cpus; ++id) {
    CpuidTable t = cpuid_for_vcpu(amd_table(), id, cpus);
    auto* l1 = t.find(1);
    ASSERT_TRUE(l1);
    EXPECT_EQ(l1->ebx >> 24, id);
    EXPECT_EQ((l1->ebx >> 16) & 0xff, 4u);       // logical processors, rounded up to a power of two
    EXPECT_EQ(l1->ebx & 0xffff, 0x0800u);        // CLFLUSH size and brand index untouched
    EXPECT_TRUE(l1->edx & (1u << 28));           // HTT
    EXPECT_TRUE(l1->ecx & (1u << 31));           // hypervisor
    auto* smt = t.find(0xb, 0);
    auto* core = t.find(0xb, 1);
    auto* end = t.find(0xb, 2);
    ASSERT_TRUE(smt && core && end);
    EXPECT_EQ(smt->edx, id);
    EXPECT_EQ(core->edx, id);
    EXPECT_EQ(smt->ebx, 1u);
    EXPECT_EQ((smt->ecx >> 8) & 0xff, 1u);       // SMT level
    EXPECT_EQ(core->eax, 2u);                    // shift: 3 cores need 2 bits of APIC ID
    EXPECT_EQ(core->ebx, cpus);
    EXPECT_EQ((core->ecx >> 8) & 0xff, 2u);      // core level
    EXPECT_EQ((end->ecx >> 8) & 0xff, 0u);       // invalid: enumeration ends
    EXPECT_EQ(std::count_if(t.entries().begin(), t.entries().end(), [](auto& e) { return e.function == 0xb; }), 3);
    EXPECT_EQ(t.find(0x80000008)->ecx & 0xff, cpus - 1);
    EXPECT_EQ((t.find(0x80000008)->ecx >> 12) & 0xf, 2u);
    EXPECT_EQ(t.find(0x8000001e)->eax, id);
    EXPECT_EQ(t.find(0x8000001e)->ebx & 0xffff, id);  // core id, one thread per core
    EXPECT_TRUE(t.find(0x80000001)->ecx & (1u << 1));  // CmpLegacy
  }
}

TEST(CpuSetup, SingleCpuHasNoHttOrCmpLegacy) {
  CpuidTable t = cpuid_for_vcpu(amd_table(), 0, 1);
  EXPECT_FALSE(t.find(1)->edx & (1u << 28));
  EXPECT_EQ((t.find(1)->ebx >> 16) & 0xff, 1u);
  EXPECT_FALSE(t.find(0x80000001)->ecx & (1u << 1));
  EXPECT_EQ(t.find(0xb, 1)->eax, 0u);
  EXPECT_EQ(t.find(0xb, 1)->ebx, 1u);
}

TEST(CpuSetup, IntelLeafFourCountsCores) {
  CpuidTable intel({leaf(0, 0xd, 0x756e6547, 0x6c65746e, 0x49656e69), leaf(1), leaf(4, 0x1c004121)});
  intel.entries()[2].flags = KVM_CPUID_FLAG_SIGNIFCANT_INDEX;
  CpuidTable t = cpuid_for_vcpu(intel, 1, 4);
  EXPECT_EQ(t.find(4, 0)->eax >> 26, 3u);           // cores per package - 1
  EXPECT_EQ((t.find(4, 0)->eax >> 14) & 0xfff, 0u);  // each cache serves one thread
  EXPECT_EQ(t.find(4, 0)->eax & 0x3fff, 0x0121u);    // cache type and level untouched
}

// The KVM features a guest would use through vmcall are hidden (the emulator on hosts that emulate
// CPL0 code never makes the hypercall); the others, and a non-KVM leaf at the same place, stay.
TEST(CpuSetup, HidesKvmFeaturesThatNeedHypercalls) {
  const uint32_t all = 0x01ffffff;
  const uint32_t hypercalls = (1u << 7) | (1u << 11) | (1u << 13);  // PV_UNHALT, PV_SEND_IPI, PV_SCHED_YIELD
  CpuidTable kvm({leaf(0, 1), leaf(1), leaf(0x40000000, 0x40000001, 0x4b4d564b, 0x564b4d56, 0x4d),
                  leaf(0x40000001, all, 0, 0, 0)});
  CpuidTable t = cpuid_for_vcpu(kvm, 0, 2);
  EXPECT_EQ(t.find(0x40000001)->eax, all & ~hypercalls);
  EXPECT_TRUE(t.find(0x40000001)->eax & (1u << 3));  // KVM_FEATURE_CLOCKSOURCE2: an MSR, kept

  // Behind Xen's leaves (--xen-after-kvm puts KVM's at 0x40000100).
  CpuidTable behind({leaf(0, 1), leaf(0x40000000, 0x40000002, 0x566e6558, 0x65584d4d, 0x4d4d566e),
                     leaf(0x40000001, all), leaf(0x40000100, 0x40000101, 0x4b4d564b, 0x564b4d56, 0x4d),
                     leaf(0x40000101, all)});
  t = cpuid_for_vcpu(behind, 0, 1);
  EXPECT_EQ(t.find(0x40000001)->eax, all);  // Xen's version leaf, untouched
  EXPECT_EQ(t.find(0x40000101)->eax, all & ~hypercalls);
}

TEST(CpuSetup, RealModeStateIsThePageOfTheVector) {
  EntryState s = real_mode_state(0x9a, 0x5);
  EXPECT_EQ(s.cs.selector, 0x9a);
  EXPECT_EQ(s.cs.base, 0x9a0u);
  EXPECT_EQ(s.regs.rip, 0x5u);
  EXPECT_EQ(s.cr0, 0x10u);
  EXPECT_EQ(s.idt.limit, 0x3ff);
}

}  // namespace
}  // namespace evmm
