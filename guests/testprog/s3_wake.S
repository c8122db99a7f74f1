/* The s3 word's waking vector (suspend.c copies it to 0x7000): real-mode code that checks the marker
 * the guest left in RAM before sleeping and reports through debug-exit: 0x33 if it is intact, 0x44
 * if not. Position-independent: only relative jumps and absolute data addresses. */
    .section .rodata.s3stub, "a"
    .code16
    .globl s3_stub, s3_stub_end
s3_stub:
    cli
    xorw %ax, %ax
    movw %ax, %ds
    cmpl $0x53334f4b, 0x6000
    jne 1f
    movb $0x33, %al
    outb %al, $0xf4
1:  movb $0x44, %al
    outb %al, $0xf4
2:  hlt
    jmp 2b
s3_stub_end:
    .code64
    .section .note.GNU-stack, "", @progbits
