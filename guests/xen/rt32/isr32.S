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

/* Offsets in the frame once pushal is done (struct rt_frame). */
#define FRAME_EIP 40
#define FRAME_CS 44
#define FRAME_EFLAGS 48

isr_common:
    pushal
    cld
    movl %esp, %eax
    pushl %eax /* the frame */
    call rt_isr_dispatch
    addl $4, %esp
    /* No iret: on the slow host the in-kernel emulator that runs CPL0 code cannot execute a 32-bit
     * protected-mode iret (it stops with "unsupported instruction cf"), though it runs the 64-bit
     * runtime's iretq. Nothing here changes privilege or code segment, so popfl; ret $4 does the same
     * on a frame rearranged into EFLAGS, EIP (the CS slot is dropped). popfl has no interrupt shadow:
     * an interrupt let in by the restored IF can arrive before the ret, and nests on this stack. */
    movl FRAME_EIP(%esp), %eax
    movl FRAME_EFLAGS(%esp), %ebx
    movl %eax, FRAME_CS(%esp)
    movl %ebx, FRAME_EIP(%esp)
    popal
    addl $8, %esp /* vector and error code */
    popfl
    ret $4

    .section .note.GNU-stack, "", @progbits
