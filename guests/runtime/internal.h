/* Runtime-internal declarations shared between the runtime's own files; programs use rt/rt.h only. */
#ifndef RT_INTERNAL_H
#define RT_INTERNAL_H

#include "rt/hw.h"
#include "rt/layout.h"
#include "rt/rt.h"

/* Written by boot32.S before any C runs. */
extern uint32_t rt_boot_magic, rt_boot_info_addr, rt_boot_protocol;
extern const char rt_image_format[];
extern uint8_t rt_stacks[];
extern const uint8_t rt_ap_trampoline[], rt_ap_trampoline_end[];

void rt_cpu_init(uint32_t index); /* GDT, IDT, TSS for this CPU */
void rt_cpu_set_rsp0(uint32_t index, void *top); /* the stack for events taken at CPL3 */
/* Points vector straight at entry (no rt_frame, no handler table), and back at the runtime's stub. */
void rt_idt_set_raw_gate(uint8_t vector, void (*entry)(void));
void rt_idt_restore_gate(uint8_t vector);
void rt_idt_build(void);          /* once, on the BSP */
void rt_lapic_init(void);         /* enable this CPU's LAPIC */
void rt_lapic_icr(uint32_t apic_id, uint32_t low); /* raw ICR write: INIT and SIPI */
void rt_boot_normalise(void);
void rt_smp_ap_main(uint32_t index);
void rt_console_lock(void);
void rt_console_unlock(void);
/* Printing from a fatal path: does not wait for a console lock its own CPU may hold. */
void rt_panic_printf(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
/* dispatch.c: the stubs' entry into C, and the name of an exception vector ("interrupt" above 31). */
void rt_isr_dispatch(struct rt_frame *f);
const char *rt_vector_name(uint64_t vector);
/* The FATAL line for an unexpected vector, in each runtime's own frame layout (cpu.c, xen/rt32/cpu32.c). */
void rt_print_fatal(const struct rt_frame *f);

#endif
