/* 32-bit interrupt entry: one 16-byte stub per vector pushes a uniform frame (struct rt_frame, the 32-bit
 * one in rt/rt.h) and calls rt_isr_dispatch(frame). Everything runs at CPL0, so the CPU pushes EFLAGS,
 * CS, EIP (and an error code for the exceptions of SDM vol. 3 table 6-1) on the current stack. */
    .text
    .code32
    .balign 16
    .globl rt32_isr_stubs
rt32_isr_stubs:
    .set vec, 0
    .rept 256
    .balign 16
    .if (vec == 8) || (vec >= 10 && vec <= 14) || (vec == 17) || (vec == 21) || (vec == 29) || (vec == 30)
    .else
    pushl $0 /* no error code from the CPU: keep the frame uniform */
    .endif
    pushl $vec
    jmp isr_common
    .set vec, vec + 1
    .endr

isr_common:
    pushal
    cld
    movl %esp, %eax
    pushl %eax /* the frame */
    call rt_isr_dispatch
    addl $4, %esp
    popal
    addl $8, %esp /* vector and error code */
    /* On the slow host KVM's emulator cannot execute a 32-bit protected-mode iret; evmm completes it
     * (an emulation assist, src/vcpu/x86_iret.cpp). */
    iret

    .section .note.GNU-stack, "", @progbits
