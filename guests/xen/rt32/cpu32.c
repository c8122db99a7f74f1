/* The 32-bit runtime's descriptor tables and interrupt dispatch: one IDT shared by all CPUs, with the
 * handler table and semantics of the 64-bit runtime's cpu.c (rt_set_handler, rt_set_irq_handler,
 * rt_on_fatal). There is no TSS: nothing runs outside CPL0 and no handler needs a stack switch, so a
 * double fault on a broken stack ends in a triple fault rather than a FATAL line.
 *
 * The rest of the runtime (boot.c, lapic.c, smp.c, serial.c, printf.c, lib.c, platform.c) is the 64-bit
 * runtime's C built with -m32. */
#include "internal.h"

/* A 32-bit interrupt gate (SDM vol. 3 s6.11): offset 15:0, selector, then type and attributes in bits
 * 47:40, offset 31:16 in bits 63:48. */
#define GATE_INTERRUPT32 0x8e /* present, DPL 0, 32-bit interrupt gate: IF is cleared on entry */

extern const uint8_t rt32_isr_stubs[];

static uint64_t idt[256] __attribute__((aligned(16)));
static rt_handler handlers[256];
static bool needs_eoi[256];
static void (*fatal_hook)(void);

static const char *const exception_names[32] = {
    "#DE", "#DB", "NMI", "#BP", "#OF", "#BR", "#UD", "#NM", "#DF", "CSO", "#TS", "#NP", "#SS", "#GP", "#PF", "",
    "#MF", "#AC", "#MC", "#XM", "#VE", "#CP", "",    "",    "",    "",    "",    "",    "#HV", "#VC", "#SX", "",
};

void rt_idt_build(void)
{
    for (unsigned v = 0; v < 256; v++) {
        uint32_t a = (uint32_t)(uintptr_t)rt32_isr_stubs + 16 * v;
        idt[v] = (a & 0xffff) | (uint64_t)RT_SEL_CODE32 << 16 | (uint64_t)GATE_INTERRUPT32 << 40 |
                 (uint64_t)(a >> 16) << 48;
    }
}

void rt_cpu_init(uint32_t index)
{
    (void)index;
    struct __attribute__((packed)) {
        uint16_t limit;
        uint32_t base;
    } idtr = {sizeof(idt) - 1, (uint32_t)(uintptr_t)idt};
    __asm__ volatile("lidt %0" ::"m"(idtr));
}

void rt_set_handler(uint8_t vector, rt_handler h)
{
    needs_eoi[vector] = false;
    handlers[vector] = h;
}

void rt_set_irq_handler(uint8_t vector, rt_handler h)
{
    needs_eoi[vector] = true;
    handlers[vector] = h;
}

void rt_on_fatal(void (*fn)(void)) { fatal_hook = fn; }

__attribute__((noreturn)) static void fatal(struct rt_frame *f)
{
    const char *name = f->vector < 32 ? exception_names[f->vector] : "interrupt";
    rt_panic_printf("FATAL: unexpected %s vector %u err 0x%x eip 0x%x cr2 0x%lx cs 0x%x eflags 0x%x esp 0x%x "
                    "lapic %u\n",
                    name, f->vector, f->error, f->eip, (unsigned long)read_cr2(), f->cs, f->eflags,
                    f->esp_at_pusha + 20 /* above the vector, error code, EIP, CS, EFLAGS */, rt_lapic_id());
    if (fatal_hook)
        fatal_hook();
    rt_exit(RT_EXIT_FATAL);
}

void rt_isr_dispatch(struct rt_frame *f);
void rt_isr_dispatch(struct rt_frame *f)
{
    uint8_t v = (uint8_t)f->vector;
    /* A spurious LAPIC interrupt is not in service and must not be acknowledged (SDM vol. 3 s11.9). */
    if (v == RT_VEC_SPURIOUS && !handlers[v])
        return;
    if (!handlers[v])
        fatal(f);
    handlers[v](f);
    if (needs_eoi[v])
        rt_lapic_eoi();
}
