/* xt_compat_hypercall(stub, a1, a2): calls a hypercall stub from a 32-bit compatibility-mode code
 * segment of this 64-bit guest, with the 32-bit ABI (ebx, ecx), and returns EAX, as a 64-bit guest's
 * 32-bit code would. The stub (and this code and the stack) lie below 4 GiB. A far call with a 32-bit
 * operand enters the runtime's 32-bit code segment; lret with a 32-bit operand comes back. Interrupts
 * stay off in between. Empty in the 32-bit build. */
#include "rt/layout.h"

#ifdef __x86_64__
    .text
    .code64
    .globl xt_compat_hypercall
xt_compat_hypercall:
    push %rbx
    pushfq
    cli
    mov %esi, %ebx           /* first argument */
    mov %edx, %ecx           /* second argument */
    xor %edx, %edx
    xor %esi, %esi           /* the stub's address stays in edi, the fifth argument */
    lcall *compat_entry(%rip)
    popfq
    pop %rbx
    ret

    .code32
compat_code:
    call *%edi
    lret

    .code64
    .section .rodata
    .balign 8
compat_entry:
    .long compat_code
    .word RT_SEL_CODE32
#endif

    .section .note.GNU-stack, "", @progbits
