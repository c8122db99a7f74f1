/* The assist-fault action: int n through IDT entries the CPU refuses, so that where evmm completes int n
 * (the slow host) it must inject the fault the CPU would raise, and the guest's handler must see it with
 * the SDM's vector and error code (vol. 3 s6.13) and RIP at the int itself (a fault, not a trap). */
#include "testprog.h"

#define VEC_NP 11
#define VEC_GP 13
#define SEL_SPARE 0x20 /* the runtime's unused GDT slot (boot32.S) */

extern uint64_t rt_gdt[];

static volatile uint64_t fault_vector, fault_error, fault_rip;

static void record_fault(struct rt_frame *f)
{
    fault_vector = f->vector;
    fault_error = f->error;
    fault_rip = f->rip;
    f->rip += 2; /* past the two-byte int n, which the fault left unexecuted */
}

static uint8_t *idt_entry(uint8_t vector)
{
    struct __attribute__((packed)) {
        uint16_t limit;
        uint64_t base;
    } idtr;
    __asm__ volatile("sidt %0" : "=m"(idtr));
    return (uint8_t *)(uintptr_t)idtr.base + 16 * vector;
}

/* Runs int `vector` (0x81..0x83, spelled out as CD ib) and checks the fault the handler saw. */
static void expect_fault(const char *name, uint8_t vector, uint64_t want_vector, uint64_t want_error)
{
    uint64_t at;
    fault_vector = ~0ull;
    switch (vector) {
    case 0x81: __asm__ volatile("1: .byte 0xcd, 0x81\n leaq 1b(%%rip), %0" : "=r"(at)::"memory"); break;
    case 0x82: __asm__ volatile("1: .byte 0xcd, 0x82\n leaq 1b(%%rip), %0" : "=r"(at)::"memory"); break;
    default: __asm__ volatile("1: .byte 0xcd, 0x83\n leaq 1b(%%rip), %0" : "=r"(at)::"memory"); break;
    }
    if (fault_vector != want_vector || fault_error != want_error || fault_rip != at)
        tp_fail(RT_EXIT_ASSIST_FAILED,
                "assist-fault: %s FAILED: vector %lu error 0x%lx rip 0x%lx, expected %lu error 0x%lx rip 0x%lx", name,
                fault_vector, fault_error, fault_rip, want_vector, want_error, at);
    rt_printf("assist-fault: %s ok\n", name);
}

void action_assist_fault(void)
{
    rt_set_handler(VEC_NP, record_fault);
    rt_set_handler(VEC_GP, record_fault);

    uint8_t *np_gate = idt_entry(0x81), *cs_gate = idt_entry(0x82), *type_gate = idt_entry(0x83);
    /* A not-present gate: #NP with the IDT form of the error code, vector * 8 + 2. */
    uint8_t attr = np_gate[5];
    np_gate[5] = attr & 0x7f;
    expect_fault("np-gate", 0x81, VEC_NP, 0x81 * 8 + 2);
    np_gate[5] = attr;

    /* A present gate whose code segment is not: #NP with the selector. */
    rt_gdt[SEL_SPARE / 8] = 0x00af1b000000ffffull; /* 64-bit code, P clear */
    uint16_t sel = cs_gate[2] | cs_gate[3] << 8;
    cs_gate[2] = SEL_SPARE;
    cs_gate[3] = 0;
    expect_fault("np-segment", 0x82, VEC_NP, SEL_SPARE);
    cs_gate[2] = sel & 0xff;
    cs_gate[3] = sel >> 8;
    rt_gdt[SEL_SPARE / 8] = 0;

    /* A call gate in the IDT: #GP with the IDT form. */
    attr = type_gate[5];
    type_gate[5] = 0x8c;
    expect_fault("gp-gate-type", 0x83, VEC_GP, 0x83 * 8 + 2);
    type_gate[5] = attr;

    rt_set_handler(VEC_NP, NULL);
    rt_set_handler(VEC_GP, NULL);
    rt_printf("assist-fault: all ok\n");
}
