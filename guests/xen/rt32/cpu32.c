/* The 32-bit runtime's descriptor table: one IDT shared by all CPUs, whose gates lead to isr32.S's stubs
 * and from there to the runtime's dispatch.c. There is no TSS: nothing runs outside CPL0 and no handler
 * needs a stack switch, so a double fault on a broken stack ends in a triple fault rather than a FATAL
 * line.
 *
 * The rest of the runtime (boot.c, dispatch.c, lapic.c, smp.c, serial.c, printf.c, lib.c, platform.c) is
 * the 64-bit runtime's C built with -m32. */
#include "internal.h"

/* A 32-bit interrupt gate (SDM vol. 3 s6.11): offset 15:0, selector, then type and attributes in bits
 * 47:40, offset 31:16 in bits 63:48. */
#define GATE_INTERRUPT32 0x8e /* present, DPL 0, 32-bit interrupt gate: IF is cleared on entry */

extern const uint8_t rt32_isr_stubs[];

static uint64_t idt[256] __attribute__((aligned(16)));

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

void rt_print_fatal(const struct rt_frame *f)
{
    rt_panic_printf("FATAL: unexpected %s vector %u err 0x%x eip 0x%x cr2 0x%lx cs 0x%x eflags 0x%x esp 0x%x "
                    "lapic %u\n",
                    rt_vector_name(f->vector), f->vector, f->error, f->eip, (unsigned long)read_cr2(), f->cs,
                    f->eflags, f->esp_at_pusha + 20 /* above the vector, error code, EIP, CS, EFLAGS */,
                    rt_lapic_id());
}
