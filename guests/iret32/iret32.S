/* iret32: a multiboot ELF32 guest that returns with iret in 32-bit protected mode, paging off, at CPL0
 * (issue 13). In order:
 *   1. a same-privilege iret whose EFLAGS image sets CF;
 *   2. an outer-privilege iret to CPL3 (code and stack of DPL 3, not yet accessed), which nulls DS, ES,
 *      FS and GS (DPL 0 data);
 *   3. at CPL3, ud2: the #UD comes back to CPL0 on the TSS's SS0:ESP0 stack; the handler checks the
 *      frame (CS, SS, ESP of CPL3), the registers CPL3 saw (DS null, CS and SS with RPL 3) and the GDT's
 *      accessed bits, then steps over the ud2 and irets to CPL3 again (an outer return from a frame
 *      the CPU built);
 *   4. the second ud2 ends it: "iret32 ok: 3 irets, cpl3 ds 0x0 cs 0x1b ss 0x23" on the debug console
 *      and isa-debug-exit 2 (status 5).
 * Any check that fails, or any other exception, prints "iret32 FAIL <what> <hex>" and exits with 1
 * (status 3). With the command line "stop-nt" (or "stop-vm") it first does an iret with EFLAGS.NT set
 * (or one whose EFLAGS image sets VM), which evmm refuses by stopping the VM. Every iret here runs at CPL0, where the slow host's KVM emulator hands it to evmm. */
#define MB_MAGIC 0x1badb002
#define MB_FLAGS 3
#define DEBUGCON 0xe9
#define DEBUG_EXIT 0xf4

#define SEL_CODE0 0x08
#define SEL_DATA0 0x10
#define SEL_UCODE 0x18
#define SEL_UDATA 0x20
#define SEL_TSS 0x28
#define EFLAGS_CF 0x1
#define EFLAGS_RESERVED 0x2 /* IF=0 throughout */
#define EFLAGS_NT 0x4000
#define EFLAGS_VM 0x20000
#define VEC_UD 6

    .section .multiboot, "a"
    .balign 4
    .long MB_MAGIC
    .long MB_FLAGS
    .long -(MB_MAGIC + MB_FLAGS)

    .text
    .code32
    .globl start
start:
    cli
    cmp $0x2badb002, %eax
    jne boot_fail
    /* The TSS descriptor's base is only known at link time in pieces: fill it in here. */
    mov $tss, %eax
    movw %ax, gdt + SEL_TSS + 2
    shr $16, %eax
    movb %al, gdt + SEL_TSS + 4
    movb %ah, gdt + SEL_TSS + 7
    lgdt gdt_ptr
    ljmp $SEL_CODE0, $1f
1:  mov $SEL_DATA0, %ax
    mov %ax, %ds
    mov %ax, %es
    mov %ax, %fs
    mov %ax, %gs
    mov %ax, %ss
    mov $stack0_top, %esp
    movl $trap_stack_top, tss + 4 /* ESP0 */
    movl $SEL_DATA0, tss + 8      /* SS0 */
    movw $104, tss + 102          /* I/O map base beyond the limit: no I/O bitmap */
    mov $SEL_TSS, %ax
    ltr %ax
    /* IDT: every exception is a failure, except #UD, the way back from CPL3. */
    xor %ecx, %ecx
2:  mov $unexpected, %eax
    cmp $VEC_UD, %ecx
    jne 3f
    mov $ud_handler, %eax
3:  mov %eax, %edx
    and $0xffff, %eax
    or $(SEL_CODE0 << 16), %eax
    mov %eax, idt(, %ecx, 8)
    and $0xffff0000, %edx
    or $0x8e00, %edx /* present, DPL 0, 32-bit interrupt gate */
    mov %edx, idt + 4(, %ecx, 8)
    inc %ecx
    cmp $32, %ecx
    jb 2b
    lidt idt_ptr
    /* The command line "stop-nt" or "stop-vm" asks for an iret evmm refuses instead. */
    testl $4, (%ebx)
    jz 1f
    mov 16(%ebx), %esi
    mov $word_nt, %edi
    call streq
    je stop_nt
    mov $word_vm, %edi
    call streq
    je stop_vm
1:

    /* 1: same privilege; CF comes from the popped image. */
    clc
    pushl $(EFLAGS_RESERVED | EFLAGS_CF)
    pushl $SEL_CODE0
    pushl $4f
    iret
4:  jc 5f
    mov $msg_cf, %esi
    xor %eax, %eax
    jmp fail
5:  incl irets

    /* 2: outer privilege, to CPL3. */
    incl irets
    pushl $(SEL_UDATA | 3)
    pushl $user_stack_top
    pushl $EFLAGS_RESERVED
    pushl $(SEL_UCODE | 3)
    pushl $at_cpl3
    iret

at_cpl3: /* CPL3: only registers; DS is null now. */
    mov %ds, %ebx
    mov %cs, %edx
    mov %ss, %edi
    ud2
    mov %ds, %ebx /* after the handler's iret: nulled again */
    mov %cs, %edx
    mov %ss, %edi
    ud2

ud_handler: /* CPL0, on trap_stack: EIP, CS, EFLAGS, ESP, SS of CPL3 */
    mov $SEL_DATA0, %eax
    mov %eax, %ds
    mov %eax, %es
    mov $msg_ds, %esi
    mov %ebx, %eax
    test %eax, %eax
    jnz fail
    mov $msg_cs, %esi
    movzwl 4(%esp), %eax
    cmp $(SEL_UCODE | 3), %eax
    jne fail
    cmp %eax, %edx
    jne fail
    mov $msg_ss, %esi
    movzwl 16(%esp), %eax
    cmp $(SEL_UDATA | 3), %eax
    jne fail
    cmp %eax, %edi
    jne fail
    mov $msg_esp, %esi
    mov 12(%esp), %eax
    cmp $user_stack_top, %eax
    jne fail
    /* Loading CS and SS at the outer iret set their descriptors' accessed bits (type 0xb, 0x3). */
    mov $msg_accessed, %esi
    movzbl gdt + SEL_UCODE + 5, %eax
    cmp $0xfb, %eax
    jne fail
    movzbl gdt + SEL_UDATA + 5, %eax
    cmp $0xf3, %eax
    jne fail
    cmpl $1, ud_count
    je done
    incl ud_count
    /* 3: step over the ud2 and go back to CPL3 through the CPU's own frame. */
    addl $2, (%esp) /* ud2 is 0f 0b */
    incl irets
    iret

done:
    mov $msg_ok, %esi
    call puts
    mov irets, %eax
    call putdec
    mov $msg_irets, %esi
    call puts
    mov %ebx, %eax
    call puthex
    mov $msg_cs_word, %esi
    call puts
    mov %edx, %eax
    call puthex
    mov $msg_ss_word, %esi
    call puts
    mov %edi, %eax
    call puthex
    movb $'\n', %al
    outb %al, $DEBUGCON
    movb $2, %al
    outb %al, $DEBUG_EXIT
    jmp halt

stop_nt: /* a nested-task return: evmm stops the VM */
    pushfl
    orl $EFLAGS_NT, (%esp)
    popfl
    pushl $EFLAGS_RESERVED
    pushl $SEL_CODE0
    pushl $stop_returned
    iret
stop_vm: /* a return to virtual-8086 mode: evmm stops the VM */
    pushl $(EFLAGS_RESERVED | EFLAGS_VM)
    pushl $SEL_CODE0
    pushl $stop_returned
    iret
stop_returned:
    mov $msg_stop, %esi
    xor %eax, %eax
    jmp fail

unexpected: /* any other exception: the top of the frame (error code or EIP) names it */
    mov $SEL_DATA0, %eax
    mov %eax, %ds
    mov $msg_exception, %esi
    mov (%esp), %eax
    jmp fail

boot_fail:
    mov $msg_boot, %esi
fail: /* %esi what, %eax the value */
    push %eax
    push %esi
    mov $msg_fail, %esi
    call puts
    pop %esi
    call puts
    pop %eax
    call puthex
    movb $'\n', %al
    outb %al, $DEBUGCON
    movb $1, %al
    outb %al, $DEBUG_EXIT
halt:
    hlt
    jmp halt

puts: /* %esi: NUL-terminated */
    push %eax
1:  movb (%esi), %al
    test %al, %al
    jz 2f
    outb %al, $DEBUGCON
    inc %esi
    jmp 1b
2:  pop %eax
    ret

puthex: /* %eax, as 0x<hex> without leading zeros */
    push %ebx
    push %ecx
    push %edx
    mov %eax, %edx
    movb $'0', %al
    outb %al, $DEBUGCON
    movb $'x', %al
    outb %al, $DEBUGCON
    xor %ebx, %ebx /* nonzero once a digit was printed */
    mov $28, %ecx
1:  mov %edx, %eax
    shr %cl, %eax
    and $0xf, %eax
    or %eax, %ebx
    jnz 2f
    test %ecx, %ecx /* the last digit even when zero */
    jnz 3f
2:  movb hexdigits(%eax), %al
    outb %al, $DEBUGCON
3:  sub $4, %ecx
    jns 1b
    pop %edx
    pop %ecx
    pop %ebx
    ret

streq: /* ZF set when the strings at %esi and %edi are equal */
    push %esi
    push %edi
1:  movb (%esi), %al
    cmpb (%edi), %al
    jne 2f
    inc %esi
    inc %edi
    test %al, %al
    jnz 1b
2:  pop %edi
    pop %esi
    ret

putdec: /* %eax < 10 */
    add $'0', %al
    outb %al, $DEBUGCON
    ret

    .section .rodata
hexdigits: .ascii "0123456789abcdef"
msg_ok: .asciz "iret32 ok: "
msg_irets: .asciz " irets, cpl3 ds "
msg_cs_word: .asciz " cs "
msg_ss_word: .asciz " ss "
msg_fail: .asciz "iret32 FAIL "
msg_boot: .asciz "not multiboot "
msg_cf: .asciz "CF not loaded by the same-privilege iret "
msg_ds: .asciz "DS not nulled at CPL3 "
msg_cs: .asciz "CS at CPL3 "
msg_ss: .asciz "SS at CPL3 "
msg_esp: .asciz "ESP at CPL3 "
msg_accessed: .asciz "accessed bit not set, type byte "
msg_exception: .asciz "unexpected exception, top of frame "
msg_stop: .asciz "the refused iret returned "
word_nt: .asciz "stop-nt"
word_vm: .asciz "stop-vm"

    .data
    .balign 8
gdt:
    .quad 0
    .quad 0x00cf9b000000ffff /* SEL_CODE0 */
    .quad 0x00cf93000000ffff /* SEL_DATA0 */
    .quad 0x00cffa000000ffff /* SEL_UCODE: DPL 3, not accessed */
    .quad 0x00cff2000000ffff /* SEL_UDATA: DPL 3, not accessed */
    .quad 0x0000890000000067 /* SEL_TSS: 32-bit available TSS, base filled in at start */
gdt_end:
    .balign 4
    .word 0
gdt_ptr:
    .word gdt_end - gdt - 1
    .long gdt
    .word 0
idt_ptr:
    .word 32 * 8 - 1
    .long idt
irets: .long 0
ud_count: .long 0

    .bss
    .balign 16
idt: .skip 32 * 8
tss: .skip 104
    .balign 16
    .skip 1024
stack0_top:
    .skip 1024
trap_stack_top:
    .skip 1024
user_stack_top:
