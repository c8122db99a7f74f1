#include "vcpu/cpuid_timing.h"

#include <gtest/gtest.h>

namespace evmm {
namespace {

kvm_cpuid_entry2 leaf(uint32_t fn, uint32_t eax, uint32_t ebx, uint32_t ecx, uint32_t edx) {
  kvm_cpuid_entry2 e{};
  e.function = fn;
  e.eax = eax;
  e.ebx = ebx;
  e.ecx = ecx;
  e.edx = edx;
  return e;
}

TEST(CpuidTiming, AddsTheLeafAndRaisesKvmsMaxLeaf) {
  CpuidTable t({leaf(0x40000000, 0x40000001, 0x4b4d564b, 0x564b4d56, 0x4d), leaf(0x40000001, 0x1, 0, 0, 0)});
  ASSERT_TRUE(add_cpuid_timing_leaf(t, 2'400'123));
  EXPECT_EQ(t.find(0x40000000)->eax, 0x40000010u);
  ASSERT_NE(t.find(0x40000010), nullptr);
  EXPECT_EQ(t.find(0x40000010)->eax, 2'400'123u);
  EXPECT_EQ(t.find(0x40000010)->ebx, 1'000'000u);
  EXPECT_EQ(t.find(0x40000010)->ecx, 0u);
  // A second call replaces the leaf rather than adding another.
  ASSERT_TRUE(add_cpuid_timing_leaf(t, 1'000'000));
  EXPECT_EQ(t.find(0x40000010)->eax, 1'000'000u);
  EXPECT_EQ(t.entries().size(), 3u);
}

TEST(CpuidTiming, KeepsAHigherMaxLeaf) {
  CpuidTable t({leaf(0x40000000, 0x40000020, 0x4b4d564b, 0x564b4d56, 0x4d)});
  ASSERT_TRUE(add_cpuid_timing_leaf(t, 3'000'000));
  EXPECT_EQ(t.find(0x40000000)->eax, 0x40000020u);
}

TEST(CpuidTiming, LeavesOtherHypervisorsAndUnknownRatesAlone) {
  // "XenVMMXenVMM" at 0x40000000 (evmm --xen): 0x40000010 would be inside Xen's range.
  CpuidTable xen({leaf(0x40000000, 0x40000005, 0x566e6558, 0x65584d4d, 0x4d4d566e)});
  EXPECT_FALSE(add_cpuid_timing_leaf(xen, 2'000'000));
  EXPECT_EQ(xen.find(0x40000010), nullptr);
  EXPECT_EQ(xen.find(0x40000000)->eax, 0x40000005u);
  CpuidTable none({leaf(0, 0xd, 0, 0, 0)});
  EXPECT_FALSE(add_cpuid_timing_leaf(none, 2'000'000));
  CpuidTable kvm({leaf(0x40000000, 0x40000001, 0x4b4d564b, 0x564b4d56, 0x4d)});
  EXPECT_FALSE(add_cpuid_timing_leaf(kvm, 0));
  EXPECT_EQ(kvm.find(0x40000010), nullptr);
}

}  // namespace
}  // namespace evmm
