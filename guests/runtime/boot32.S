/* 32-bit entry points (Multiboot v1, PVH and plain ELF) and the switch to long mode; the APs come here
 * from the real-mode trampoline (ap_trampoline.S).
 *
 * Both boot protocols enter in flat 32-bit protected mode with paging off (Multiboot 0.6.96 s3.2;
 * Xen docs/misc/pvh.pandoc). So does a plain ELF image, which has neither header: the loader enters it
 * at e_entry (rt_entry_pvh in such an image) with every register zero, the stack pointer included. The
 * image is linked at its physical load address and memory is identity mapped, so every address here is
 * both physical and virtual. */
#include "rt/layout.h"

#define MSR_EFER 0xc0000080
#define EFER_LME (1 << 8)
#define CR4_PAE (1 << 5)
#define CR0_PE (1 << 0)
#define CR0_NW (1 << 29)
#define CR0_CD (1 << 30)
#define CR0_PG (1 << 31)

/* Page-table entry bits (SDM vol. 3 s4.5). */
#define PTE_P 0x1
#define PTE_RW 0x2
#define PTE_PWT 0x8
#define PTE_PCD 0x10
#define PTE_PS 0x80

    .section .text.boot, "ax"
    .code32
    .globl rt_entry_multiboot
rt_entry_multiboot:
    /* EAX = 0x2BADB002, EBX = multiboot info; C checks the magic. */
    cli
    movl %eax, rt_boot_magic
    movl %ebx, rt_boot_info_addr
    movl $0, rt_boot_protocol
    jmp bsp_common

    .globl rt_entry_pvh
rt_entry_pvh:
    /* EBX = struct hvm_start_info; the stack pointer is undefined. EBX = 0 is a plain ELF entry: no
     * start info (rt_boot_protocol values are enum rt_boot_protocol in rt.h). */
    cli
    RT_RECORD_PVH_ENTRY

bsp_common:
    /* The loader's segments are undefined beyond "flat": load ours before relying on any. */
    lgdt rt_gdt_ptr
    ljmp $RT_SEL_CODE32, $1f
1:  RT_LOAD_DATA_SEGMENTS
    movl $(rt_stacks + RT_STACK_SIZE), %esp
    xorl %edi, %edi /* CPU index 0 */
    jmp enter_long_mode

    /* APs arrive here from the trampoline in protected mode on our GDT. */
    .globl rt_ap_entry32
rt_ap_entry32:
    RT_LOAD_DATA_SEGMENTS
    movl $1, %edi
    lock xaddl %edi, rt_ap_next_index
    cmpl $RT_MAX_CPUS, %edi
    jae park /* more CPUs than stacks: stay out of the way */
    leal 1(%edi), %esp
    shll $RT_STACK_SHIFT, %esp
    addl $rt_stacks, %esp

enter_long_mode:
    /* SDM vol. 3 s10.8.5: PAE, CR3, EFER.LME, then CR0.PG activates IA-32e mode. */
    movl %cr4, %eax
    orl $CR4_PAE, %eax
    movl %eax, %cr4
    movl $rt_pml4, %eax
    movl %eax, %cr3
    movl $MSR_EFER, %ecx
    rdmsr
    orl $EFER_LME, %eax
    wrmsr
    movl %cr0, %eax
    /* An AP leaves INIT with CD and NW set; caches off would make KVM map our memory uncached. */
    andl $~(CR0_CD | CR0_NW), %eax
    orl $(CR0_PG | CR0_PE), %eax
    movl %eax, %cr0
    ljmp $RT_SEL_CODE64, $long64

park:
    cli
    hlt
    jmp park

    .code64
long64:
    movl $RT_SEL_DATA, %eax
    movl %eax, %ds
    movl %eax, %es
    movl %eax, %ss
    xorl %eax, %eax
    movl %eax, %fs
    movl %eax, %gs
    /* Upper halves are undefined after the mode switch; 32-bit moves zero them. */
    movl %esp, %esp
    movl %edi, %edi
    call rt_cpu_entry
2:  cli
    hlt
    jmp 2b

    .data
    .globl rt_boot_magic, rt_boot_info_addr, rt_boot_protocol, rt_ap_next_index
    .balign 4
rt_boot_magic: .long 0
rt_boot_info_addr: .long 0
rt_boot_protocol: .long 0
rt_ap_next_index: .long 1 /* APs take indices 1, 2, ... in arrival order */

    /* Flat segments; the accessed bits are preset so loading them writes nothing back. */
    .balign 16
    .globl rt_gdt, rt_gdt_end, rt_gdt_limit, rt_gdt_ptr
rt_gdt:
    .quad 0
    .quad 0x00af9b000000ffff /* 0x08: 64-bit code */
    .quad 0x00cf93000000ffff /* 0x10: data, 4 GiB */
    .quad 0x00cf9b000000ffff /* 0x18: 32-bit code, 4 GiB */
    .quad 0                  /* 0x20: unused, keeps the TSS descriptors 16-byte aligned */
    .fill RT_MAX_CPUS * 2, 8, 0 /* 0x28: TSS descriptors, filled by cpu.c */
    .quad 0x00cff3000000ffff /* RT_SEL_UDATA: data, DPL 3 (rt_run_user) */
    .quad 0x00affb000000ffff /* RT_SEL_UCODE64: 64-bit code, DPL 3 */
rt_gdt_end:
    .set rt_gdt_limit, rt_gdt_end - rt_gdt - 1 /* for the AP trampoline (ap_trampoline.S) */
    .balign 8
    /* One pointer for both modes: 32-bit lgdt reads the low 4 bytes of the base, 64-bit all 8. */
rt_gdt_ptr:
    .word rt_gdt_end - rt_gdt - 1
    .quad rt_gdt

/* Identity map of the first 4 GiB with 2 MiB pages, assembled at build time: no guest instructions are
 * spent building it. The pages from 0xFEC00000 (IOAPIC, LAPIC at 0xFEE00000) are uncached. */
    .section .data.pagetables, "aw"
    .balign 4096
    .globl rt_pml4, rt_pdpt, rt_pd
rt_pml4:
    .quad rt_pdpt + PTE_P + PTE_RW
    .fill 511, 8, 0
rt_pdpt:
    .quad rt_pd + 0x0000 + PTE_P + PTE_RW
    .quad rt_pd + 0x1000 + PTE_P + PTE_RW
    .quad rt_pd + 0x2000 + PTE_P + PTE_RW
    .quad rt_pd + 0x3000 + PTE_P + PTE_RW
    .fill 508, 8, 0
rt_pd:
    .set addr, 0
    .rept 2048
    .if addr >= 0xfec00000
    .quad addr + PTE_P + PTE_RW + PTE_PS + PTE_PWT + PTE_PCD
    .else
    .quad addr + PTE_P + PTE_RW + PTE_PS
    .endif
    .set addr, addr + 0x200000
    .endr

    .bss
    .balign RT_STACK_SIZE
    .globl rt_stacks
rt_stacks:
    .skip RT_STACK_SIZE * RT_MAX_CPUS

    .section .note.GNU-stack, "", @progbits
