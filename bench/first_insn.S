/* The startup benchmark's guest: its first instruction is an OUT of 'R' to the debug console
 * (port 0xe9), then it halts with interrupts off. A multiboot v1 image with the a.out kludge, so
 * evmm and QEMU load exactly the same bytes. */
        .code32
        .section .text
        .globl _start
        .set MB_MAGIC, 0x1BADB002
        .set MB_FLAGS, (1 << 16)                /* the address fields below are valid */
        .set LOAD, 0x100000
header:
        .long MB_MAGIC
        .long MB_FLAGS
        .long -(MB_MAGIC + MB_FLAGS)
        .long LOAD + (header - header)          /* header_addr */
        .long LOAD                              /* load_addr */
        .long 0                                 /* load_end_addr: the whole file */
        .long 0                                 /* bss_end_addr: no bss */
        .long LOAD + (_start - header)          /* entry_addr */
_start:
        movb $'R', %al
        outb %al, $0xe9
1:      cli
        hlt
        jmp 1b
