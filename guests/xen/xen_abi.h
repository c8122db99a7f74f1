/* The Xen public ABI as the test guest sees it: every struct and constant comes from Debian's libxen-dev
 * headers. Built with -m32, xen.h selects arch-x86/xen-x86_32.h by itself, so the same source gets the
 * 32-bit layouts: xen_ulong_t of 32 bits, 32 words of evtchn_pending, 4-byte guest handles.
 *
 * Include this header before any other Xen header. */
#ifndef XEN_ABI_H
#define XEN_ABI_H

#ifdef __XEN_INTERFACE_VERSION__
#error "xen_abi.h must come before any other Xen header"
#endif
/* The newest interface these headers describe (Xen 4.14 and later). A guest that defines none gets the
 * Xen 3.0 interface, where __HYPERVISOR_sched_op is sched_op_compat (6) and __HYPERVISOR_event_channel_op
 * is event_channel_op_compat (16): not the hypercalls this guest means. */
#define __XEN_INTERFACE_VERSION__ 0x00040e00

#include <stddef.h>
#include <stdint.h> /* the Xen headers use the fixed-width types without including it */

#include <xen/xen.h>
#include <xen/errno.h>
#include <xen/event_channel.h>
#include <xen/memory.h>
#include <xen/sched.h>
#include <xen/vcpu.h>
#include <xen/version.h>
#include <xen/hvm/hvm_op.h>
#include <xen/hvm/params.h>
#include <xen/arch-x86/cpuid.h>

_Static_assert(__HYPERVISOR_sched_op == 29 && __HYPERVISOR_event_channel_op == 32,
               "the current hypercall numbers, not the Xen 3.0 compat ones");
#ifdef __x86_64__
_Static_assert(sizeof(xen_ulong_t) == 8 && EVTCHN_2L_NR_CHANNELS == 4096, "64-bit guest layout");
#else
_Static_assert(sizeof(xen_ulong_t) == 4 && EVTCHN_2L_NR_CHANNELS == 1024, "32-bit guest layout");
#endif
_Static_assert(sizeof(struct vcpu_info) == 64, "vcpu_info is 64 bytes in both widths");

#define XEN_WORD_BITS (sizeof(xen_ulong_t) * 8) /* ports per evtchn_pending word */

#endif
