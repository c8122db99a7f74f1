/* rt_run_user_asm: enters CPL3 with IRET and comes back through a #UD (ud2), whose gate user.c points at
 * rt_user_return_entry for the duration.
 *
 * On this host neither SYSCALL (CS stays at CPL3) nor `int n` (#UD) takes CPL3 code back to CPL0, but
 * exceptions are delivered through the IDT once the TSS has an RSP0. The entry drops the exception frame
 * (left on the RSP0 stack) and returns from rt_run_user_asm on the stack it was called on. Not reentrant,
 * BSP only: one saved stack pointer for the whole guest. */
#include "rt/layout.h"

#define RFLAGS_USER 0x0002 /* IF=0, IOPL 0 (the TSS I/O bitmap allows the ports), reserved bit 1 */

    .code64
    .text
    .globl rt_run_user_asm, rt_user_return_entry
/* void rt_run_user_asm(void (*fn)(void *) %rdi, void *arg %rsi, void *user_stack_top %rdx) */
rt_run_user_asm:
    push %rbx
    push %rbp
    push %r12
    push %r13
    push %r14
    push %r15
    mov %rsp, saved_rsp(%rip)
    push $(RT_SEL_UDATA | 3)
    push %rdx
    push $RFLAGS_USER
    push $(RT_SEL_UCODE64 | 3)
    lea at_cpl3(%rip), %rax
    push %rax
    mov %rdi, %rax
    mov %rsi, %rdi
    iretq

at_cpl3: /* %rax = fn, %rdi = arg */
    call *%rax
    ud2

rt_user_return_entry:
    mov saved_rsp(%rip), %rsp
    mov $RT_SEL_DATA, %eax
    mov %eax, %ds /* the IRET to CPL3 nulled them */
    mov %eax, %es
    pop %r15
    pop %r14
    pop %r13
    pop %r12
    pop %rbp
    pop %rbx
    ret

    .data
    .balign 8
saved_rsp: .quad 0

    .section .note.GNU-stack, "", @progbits
