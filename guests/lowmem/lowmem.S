/* A multiboot ELF32 guest linked at 0x8000 (issue 13), entered in 32-bit protected mode with paging
 * off. It checks that the loader zeroed its bss and that no boot data landed on it, then prints
 * "lowmem ok: <command line>" on the debug console and exits through isa-debug-exit with 2 (status 5);
 * on any failure it prints "lowmem FAIL" and exits with 1 (status 3). No stack is needed. */
#define MB_MAGIC 0x1badb002
#define MB_FLAGS 3 /* page-aligned modules, memory info */
#define DEBUGCON 0xe9
#define DEBUG_EXIT 0xf4

    .section .multiboot, "a"
    .balign 4
    .long MB_MAGIC
    .long MB_FLAGS
    .long -(MB_MAGIC + MB_FLAGS)

    .text
    .code32
    .globl start
start:
    cmp $0x2badb002, %eax
    jne fail
    /* The whole bss still reads zero: nothing the loader wrote after the image overlapped it. */
    mov $_bss_start, %edi
1:  cmpl $0, (%edi)
    jne fail
    add $4, %edi
    cmp $_end, %edi
    jb 1b
    /* The information structure and the command line lie outside the image. */
    cmp $_image_start, %ebx
    jb 2f
    cmp $_end, %ebx
    jb fail
2:  testl $4, (%ebx)            /* flags bit 2: cmdline is valid */
    jz fail
    mov 16(%ebx), %ecx
    cmp $_image_start, %ecx
    jb 3f
    cmp $_end, %ecx
    jb fail
3:  mov $DEBUGCON, %dx
    mov $ok_msg, %esi
4:  movb (%esi), %al
    test %al, %al
    jz 5f
    outb %al, %dx
    inc %esi
    jmp 4b
5:  movb (%ecx), %al             /* the command line, up to its NUL */
    test %al, %al
    jz 6f
    outb %al, %dx
    inc %ecx
    jmp 5b
6:  movb $'\n', %al
    outb %al, %dx
    movb $2, %al
    outb %al, $DEBUG_EXIT
    jmp halt

fail:
    mov $DEBUGCON, %dx
    mov $fail_msg, %esi
7:  movb (%esi), %al
    test %al, %al
    jz 8f
    outb %al, %dx
    inc %esi
    jmp 7b
8:  movb $1, %al
    outb %al, $DEBUG_EXIT
halt:
    hlt
    jmp halt

    .section .rodata
ok_msg:
    .asciz "lowmem ok: "
fail_msg:
    .asciz "lowmem FAIL\n"

    /* 256 KiB of bss: [~0x9000, ~0x49000) covers 0x20000 and 0x30000. */
    .bss
    .balign 4096
    .skip 0x40000

    .section .note.GNU-stack, "", @progbits
