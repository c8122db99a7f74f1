/* Real-mode AP trampoline, copied to RT_AP_TRAMPOLINE (SIPI vector 0x08) by smp.c: it loads the
 * runtime's GDT and jumps to rt_ap_entry32 in 32-bit protected mode, where each runtime goes on (long
 * mode in boot32.S, the 32-bit runtime's own path in xen/rt32/entry32.S). Position-independent apart
 * from absolute addresses of the image. Both runtimes provide rt_gdt, its limit as the absolute symbol
 * rt_gdt_limit, and a flat 32-bit code segment at RT_SEL_CODE32. */
#include "rt/layout.h"

#define CR0_PE (1 << 0)

    .section .text.trampoline, "ax"
    .code16
    .globl rt_ap_trampoline, rt_ap_trampoline_end
rt_ap_trampoline:
    cli
    movw %cs, %ax
    movw %ax, %ds
    lgdtl ap_gdt_ptr - rt_ap_trampoline
    movl %cr0, %eax
    orl $CR0_PE, %eax
    movl %eax, %cr0
    ljmpl $RT_SEL_CODE32, $rt_ap_entry32
    .balign 4
ap_gdt_ptr:
    .word rt_gdt_limit
    .long rt_gdt
rt_ap_trampoline_end:

    .section .note.GNU-stack, "", @progbits
