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

#endif
