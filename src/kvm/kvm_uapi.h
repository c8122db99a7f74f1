// The KVM UAPI, as evmm includes it: every file includes this instead of <linux/kvm.h>.
//
// In C++, the kernel headers' __DECLARE_FLEX_ARRAY puts an empty struct (1 byte in C++, 0 in C)
// before the flexible array, so structs such as kvm_cpuid2 and kvm_msrs get a different layout and
// size than the kernel's, and the ioctl numbers derived from sizeof() change with them (newer
// kernels fix the macro for C++). Declaring the array as GNU zero-length restores the C layout.
#pragma once

#include <linux/stddef.h>

#undef __DECLARE_FLEX_ARRAY
#define __DECLARE_FLEX_ARRAY(TYPE, NAME) TYPE NAME[0]

#include <linux/kvm.h>

#include <cstddef>

// These fire when <linux/kvm.h> was included before this header in a translation unit.
static_assert(offsetof(kvm_cpuid2, entries) == 8 && sizeof(kvm_cpuid2) == 8, "include kvm/kvm_uapi.h first");
static_assert(offsetof(kvm_msrs, entries) == 8 && sizeof(kvm_msrs) == 8, "include kvm/kvm_uapi.h first");
static_assert(offsetof(kvm_msr_list, indices) == 4, "include kvm/kvm_uapi.h first");
static_assert(offsetof(kvm_irq_routing, entries) == 8, "include kvm/kvm_uapi.h first");
// The ioctl numbers the kernel uses on x86-64, as a C compiler computes them.
static_assert(KVM_GET_SUPPORTED_CPUID == 0xc008ae05);
static_assert(KVM_SET_CPUID2 == 0x4008ae90);
static_assert(KVM_GET_MSRS == 0xc008ae88 && KVM_SET_MSRS == 0x4008ae89);
static_assert(KVM_GET_MSR_INDEX_LIST == 0xc004ae02);
static_assert(KVM_SET_GSI_ROUTING == 0x4008ae6a);
