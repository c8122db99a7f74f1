/* Constants shared by the assembly entry code and the C runtime (this header must stay assembler-safe). */
#ifndef RT_LAYOUT_H
#define RT_LAYOUT_H

#define RT_MAX_CPUS 8
#define RT_STACK_SHIFT 14 /* 16 KiB per CPU; rt_cpu_index() derives the CPU from the stack pointer */
#define RT_STACK_SIZE (1 << RT_STACK_SHIFT)

/* GDT selectors (boot32.S builds the table). */
#define RT_SEL_CODE64 0x08
#define RT_SEL_DATA 0x10
#define RT_SEL_CODE32 0x18
#define RT_SEL_TSS0 0x28 /* one 16-byte TSS descriptor per CPU from here */
#define RT_SEL_UDATA (RT_SEL_TSS0 + 16 * RT_MAX_CPUS) /* DPL 3, for rt_run_user */
#define RT_SEL_UCODE64 (RT_SEL_UDATA + 8)

#define RT_AP_TRAMPOLINE 0x8000 /* SIPI vector 0x08: the AP starts in real mode at 0800:0000 */

#define RT_LAPIC_BASE 0xfee00000
#define RT_IOAPIC_BASE 0xfec00000

#ifdef __ASSEMBLER__
/* Both runtimes' 32-bit entry code (runtime/boot32.S, xen/rt32/entry32.S). */

/* The PVH or plain ELF entry's record of how it was booted: EBX is the hvm_start_info, or 0 for a
 * plain ELF, which has none (values of enum rt_boot_protocol in rt.h). */
.macro RT_RECORD_PVH_ENTRY
    movl %ebx, rt_boot_info_addr
    movl $1, rt_boot_protocol /* RT_BOOT_PVH */
    testl %ebx, %ebx
    jnz .Lrt_pvh_recorded\@
    movl $2, rt_boot_protocol /* RT_BOOT_ELF */
.Lrt_pvh_recorded\@:
.endm

/* Loads the runtime's flat data selector into every data segment register; clobbers EAX. */
.macro RT_LOAD_DATA_SEGMENTS
    movl $RT_SEL_DATA, %eax
    movl %eax, %ds
    movl %eax, %es
    movl %eax, %ss
    movl %eax, %fs
    movl %eax, %gs
.endm
#endif

#endif
