/* Xen hypercalls from an HVM guest, through the hypercall page: hypercall n is a call to
 * hypercall_page + n * 32, where the VMM wrote its stub for n when the guest wrote the page's address to
 * the MSR of CPUID leaf base+2. The register convention is Xen's (public/arch-x86/xen-x86_64.h and
 * xen-x86_32.h, "Hypercall interface"):
 *   64-bit guest: arguments in rdi, rsi, rdx, r10, r8; result in rax.
 *   32-bit guest: arguments in ebx, ecx, edx, esi, edi; result in eax.
 * Xen may change the result register and the five argument registers and nothing else. A debug Xen
 * overwrites the argument registers a hypercall does not use, and any hypercall may change those it
 * uses, so every wrapper passes all five as in/out operands (0 where unused). Hypercalls read and write
 * guest memory, hence the memory clobber. */
#ifndef XEN_HYPERCALL_H
#define XEN_HYPERCALL_H

#include "xen_abi.h"

extern char hypercall_page[]; /* hypercall_page.S: page-aligned, ud2 until the VMM fills it */

#ifdef __x86_64__
#define XEN_HC_ARG1 "rdi"
#define XEN_HC_ARG2 "rsi"
#define XEN_HC_ARG3 "rdx"
#define XEN_HC_ARG4 "r10"
#define XEN_HC_ARG5 "r8"
#else
#define XEN_HC_ARG1 "ebx"
#define XEN_HC_ARG2 "ecx"
#define XEN_HC_ARG3 "edx"
#define XEN_HC_ARG4 "esi"
#define XEN_HC_ARG5 "edi"
#endif

/* op must be a constant: it becomes the call's displacement. The arguments are evaluated into ordinary
 * temporaries first, so that no function call in an argument runs after a register variable is set
 * (GCC only keeps a register variable in its register up to the asm that uses it). */
#define _hypercall5(op, a1, a2, a3, a4, a5)                                                               \
    ({                                                                                                    \
        unsigned long v1_ = (unsigned long)(a1), v2_ = (unsigned long)(a2), v3_ = (unsigned long)(a3);    \
        unsigned long v4_ = (unsigned long)(a4), v5_ = (unsigned long)(a5);                               \
        register unsigned long r1_ __asm__(XEN_HC_ARG1) = v1_;                                            \
        register unsigned long r2_ __asm__(XEN_HC_ARG2) = v2_;                                            \
        register unsigned long r3_ __asm__(XEN_HC_ARG3) = v3_;                                            \
        register unsigned long r4_ __asm__(XEN_HC_ARG4) = v4_;                                            \
        register unsigned long r5_ __asm__(XEN_HC_ARG5) = v5_;                                            \
        long res_;                                                                                        \
        __asm__ volatile("call hypercall_page + %c[offset]"                                               \
                         : "=a"(res_), "+r"(r1_), "+r"(r2_), "+r"(r3_), "+r"(r4_), "+r"(r5_)              \
                         : [offset] "i"((op) * 32)                                                        \
                         : "memory", "cc");                                                               \
        res_;                                                                                             \
    })
#define _hypercall0(op) _hypercall5(op, 0, 0, 0, 0, 0)
#define _hypercall1(op, a1) _hypercall5(op, a1, 0, 0, 0, 0)
#define _hypercall2(op, a1, a2) _hypercall5(op, a1, a2, 0, 0, 0)
#define _hypercall3(op, a1, a2, a3) _hypercall5(op, a1, a2, a3, 0, 0)
#define _hypercall4(op, a1, a2, a3, a4) _hypercall5(op, a1, a2, a3, a4, 0)

/* The hypercalls the test guest makes, with the argument lists of Xen's do_* handlers. */
static inline long HYPERVISOR_console_io(int cmd, int count, const char *buffer)
{
    return _hypercall3(__HYPERVISOR_console_io, cmd, count, buffer);
}
static inline long HYPERVISOR_xen_version(int cmd, void *arg)
{
    return _hypercall2(__HYPERVISOR_xen_version, cmd, arg);
}
static inline long HYPERVISOR_memory_op(unsigned int cmd, void *arg)
{
    return _hypercall2(__HYPERVISOR_memory_op, cmd, arg);
}
static inline long HYPERVISOR_vcpu_op(int cmd, unsigned int vcpu, void *arg)
{
    return _hypercall3(__HYPERVISOR_vcpu_op, cmd, vcpu, arg);
}
static inline long HYPERVISOR_hvm_op(int op, void *arg) { return _hypercall2(__HYPERVISOR_hvm_op, op, arg); }
static inline long HYPERVISOR_sched_op(int cmd, void *arg) { return _hypercall2(__HYPERVISOR_sched_op, cmd, arg); }
static inline long HYPERVISOR_event_channel_op(int cmd, void *arg)
{
    return _hypercall2(__HYPERVISOR_event_channel_op, cmd, arg);
}
/* Xen's do_set_timer_op(s_time_t timeout): an absolute system time in ns, 0 to cancel. A 32-bit guest has
 * no 64-bit register: the value travels split, low half in the first argument (EBX) and high half in the
 * second (ECX), as Linux's 32-bit HYPERVISOR_set_timer_op passes it and Xen's compat entry rejoins it. */
static inline long HYPERVISOR_set_timer_op(uint64_t timeout)
{
#ifdef __x86_64__
    return _hypercall1(__HYPERVISOR_set_timer_op, timeout);
#else
    return _hypercall2(__HYPERVISOR_set_timer_op, (uint32_t)timeout, (uint32_t)(timeout >> 32));
#endif
}

#endif
