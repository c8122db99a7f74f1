/* The 32-bit runtime's entry points: the BSP's (PVH or plain ELF) and the APs' after the runtime's
 * real-mode trampoline (runtime/ap_trampoline.S), the GDT and the per-CPU stacks. Unlike guests/runtime/boot32.S nothing here leaves 32-bit protected mode: paging
 * stays off, so every address is physical, the LAPIC's at 0xFEE00000 included.
 *
 * Entry state (Xen docs/misc/pvh.pandoc; evmm's plain ELF loader): flat 32-bit protected mode, paging
 * off, interrupts off, EBX = struct hvm_start_info or 0 for a plain ELF, other registers undefined (zero
 * for a plain ELF, the stack pointer included). The C entry, rt_cpu_entry(index), is the 64-bit runtime's
 * (runtime/boot.c, built with -m32). */
#include "rt/layout.h"

#define CR0_NW (1 << 29)
#define CR0_CD (1 << 30)
#define EFLAGS_RESERVED 0x2 /* bit 1 reads as 1; everything else clear: IF=0, DF=0 */

    .section .text.boot, "ax"
    .code32
    .globl rt_entry_pvh
rt_entry_pvh:
    cli
    RT_RECORD_PVH_ENTRY
    lgdt rt32_gdt_ptr
    ljmp $RT_SEL_CODE32, $1f
1:  RT_LOAD_DATA_SEGMENTS
    movl $(rt_stacks + RT_STACK_SIZE), %esp
    xorl %eax, %eax /* CPU index 0 */
    jmp cpu_common

    /* APs arrive here from the trampoline, in protected mode on our GDT. */
    .globl rt_ap_entry32
rt_ap_entry32:
    RT_LOAD_DATA_SEGMENTS
    /* An AP leaves INIT with CD and NW set; caches off would make KVM map our memory uncached. */
    movl %cr0, %eax
    andl $~(CR0_CD | CR0_NW), %eax
    movl %eax, %cr0
    movl $1, %eax
    lock xaddl %eax, rt_ap_next_index
    cmpl $RT_MAX_CPUS, %eax
    jae park /* more CPUs than stacks: stay out of the way */
    leal 1(%eax), %esp
    shll $RT_STACK_SHIFT, %esp
    addl $rt_stacks, %esp

cpu_common:
    pushl $EFLAGS_RESERVED
    popfl
    /* cdecl: the index on the stack, which is 16-byte aligned at the call as GCC's i386 ABI assumes. */
    subl $12, %esp
    pushl %eax
    call rt_cpu_entry
park:
    cli
    hlt
    jmp park

    .data
    .globl rt_boot_magic, rt_boot_info_addr, rt_boot_protocol
    .balign 4
rt_boot_magic: .long 0 /* no multiboot entry in this runtime */
rt_boot_info_addr: .long 0
rt_boot_protocol: .long 0
rt_ap_next_index: .long 1 /* APs take indices 1, 2, ... in arrival order */

    /* Flat 4 GiB segments at the 64-bit runtime's selectors (rt/layout.h); the accessed bits are preset
     * so loading them writes nothing back. */
    .balign 16
    .globl rt_gdt, rt_gdt_end, rt_gdt_limit
rt_gdt:
    .quad 0
    .quad 0                  /* 0x08: the 64-bit runtime's code64; unused */
    .quad 0x00cf93000000ffff /* 0x10 RT_SEL_DATA: data */
    .quad 0x00cf9b000000ffff /* 0x18 RT_SEL_CODE32: 32-bit code */
rt_gdt_end:
    .set rt_gdt_limit, rt_gdt_end - rt_gdt - 1 /* for the AP trampoline (ap_trampoline.S) */
    .balign 8
rt32_gdt_ptr:
    .word rt_gdt_end - rt_gdt - 1
    .long rt_gdt

    .bss
    .balign RT_STACK_SIZE
    .globl rt_stacks
rt_stacks:
    .skip RT_STACK_SIZE * RT_MAX_CPUS

    .section .note.GNU-stack, "", @progbits
