/* The hypercall pages: page-aligned pages of the image whose addresses the guest writes to the Xen MSR
 * (CPUID leaf base+2 EBX) so that the VMM fills them with one 32-byte stub per hypercall. Xen always
 * asks for one page (leaf base+2 EAX); room for four is kept in case a VMM asks for more. Until written
 * they hold ud2, so a call into a page the VMM never filled is an invalid opcode (the runtime's FATAL
 * line), not a slide through zeroes. Assembles for either width. */
#define XT_HYPERCALL_PAGES 4

    .text
    .balign 4096
    .globl hypercall_page
hypercall_page:
    .rept 4096 * XT_HYPERCALL_PAGES / 2
    ud2
    .endr
    .globl hypercall_page_end
hypercall_page_end:

    .section .note.GNU-stack, "", @progbits
