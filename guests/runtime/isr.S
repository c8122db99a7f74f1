/* Interrupt entry: one 16-byte stub per vector pushes a uniform frame (struct rt_frame in rt.h) and calls
 * rt_isr_dispatch(). SDM vol. 3 table 6-1 lists the exceptions that push an error code. */
    .text
    .code64
    .balign 4096 /* cpu.c relies on it: all stubs share the upper offset bits */
    .globl rt_isr_stubs
rt_isr_stubs:
    .set vec, 0
    .rept 256
    .balign 16
    .if (vec == 8) || (vec >= 10 && vec <= 14) || (vec == 17) || (vec == 21) || (vec == 29) || (vec == 30)
    .else
    pushq $0 /* no error code from the CPU: keep the frame uniform */
    .endif
    pushq $vec
    jmp isr_common
    .set vec, vec + 1
    .endr

isr_common:
    pushq %rax
    pushq %rbx
    pushq %rcx
    pushq %rdx
    pushq %rsi
    pushq %rdi
    pushq %rbp
    pushq %r8
    pushq %r9
    pushq %r10
    pushq %r11
    pushq %r12
    pushq %r13
    pushq %r14
    pushq %r15
    /* The CPU aligned RSP to 16 before its push; 22 quadwords later it is still aligned. */
    movq %rsp, %rdi
    cld
    call rt_isr_dispatch
    popq %r15
    popq %r14
    popq %r13
    popq %r12
    popq %r11
    popq %r10
    popq %r9
    popq %r8
    popq %rbp
    popq %rdi
    popq %rsi
    popq %rdx
    popq %rcx
    popq %rbx
    popq %rax
    addq $16, %rsp /* vector and error code */
    iretq

    .section .note.GNU-stack, "", @progbits
