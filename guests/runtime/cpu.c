/* Descriptor tables: one shared IDT, a GDT with a TSS per CPU. dispatch.c routes the vectors to the
 * handlers programs install. Everything runs at CPL0 except rt_run_user's callers (user.c). */
#include "internal.h"

/* 64-bit TSS (SDM vol. 3 s8.7). Only IST1 is used, so a double fault gets a fresh stack. */
struct __attribute__((packed)) tss64 {
    uint32_t reserved0;
    uint64_t rsp[3];
    uint64_t reserved1;
    uint64_t ist[7];
    uint64_t reserved2;
    uint16_t reserved3;
    uint16_t iomap_base;
};

/* A 64-bit IDT gate is two quadwords (SDM vol. 3 s6.14.1): offset 15:0, selector, IST (bits 34:32), type
 * and attributes (47:40), offset 31:16; then offset 63:32 and a reserved dword. */
#define GATE_IST_SHIFT 32

#define GATE_INTERRUPT 0x8e /* present, DPL 0, 64-bit interrupt gate: IF is cleared on entry */
#define TSS_AVAILABLE 0x89
#define DF_STACK_SIZE 2048

extern uint64_t rt_gdt[];
extern const uint8_t rt_isr_stubs[];

static uint64_t idt[256 * 2] __attribute__((aligned(16)));
/* Each TSS is followed by an I/O permission bitmap that allows every port (SDM vol. 1 s19.5.2), so CPL3
 * code can use in/out: this host does not let CPL3 run with IOPL 3. The byte after the bitmap must be
 * all ones. */
static struct __attribute__((packed, aligned(16))) {
    struct tss64 t;
    uint8_t iomap[65536 / 8 + 1];
} tss[RT_MAX_CPUS];
static uint8_t df_stacks[RT_MAX_CPUS][DF_STACK_SIZE] __attribute__((aligned(16)));

static uint64_t stub_gate(int vector)
{
    /* isr.S aligns the stubs to 4 KiB below 4 GiB, so stub v's gate differs from stub 0's only in the low
     * 16 offset bits, by 16 * v without carry, and the upper quadword (offset bits 63:32) stays zero. */
    uint64_t a = (uint64_t)rt_isr_stubs + 16 * vector;
    uint64_t gate = (a & 0xffff) | (uint64_t)RT_SEL_CODE64 << 16 | (uint64_t)GATE_INTERRUPT << 40 |
                    (a >> 16 & 0xffff) << 48;
    if (vector == RT_VEC_DF)
        gate |= 1ull << GATE_IST_SHIFT; /* a double fault gets the fresh IST1 stack */
    return gate;
}

void rt_idt_build(void)
{
    /* One store per vector instead of assembling every field (see stub_gate). */
    uint64_t gate = stub_gate(0);
    for (int v = 0; v < 256; v++, gate += 16)
        idt[2 * v] = gate;
    idt[2 * RT_VEC_DF] = stub_gate(RT_VEC_DF); /* with its IST */
}

void rt_idt_set_raw_gate(uint8_t vector, void (*entry)(void))
{
    uint64_t a = (uint64_t)entry;
    idt[2 * vector] = (a & 0xffff) | (uint64_t)RT_SEL_CODE64 << 16 | (uint64_t)GATE_INTERRUPT << 40 |
                      (a >> 16 & 0xffff) << 48;
    idt[2 * vector + 1] = a >> 32;
}

void rt_idt_restore_gate(uint8_t vector)
{
    idt[2 * vector] = stub_gate(vector);
    idt[2 * vector + 1] = 0;
}

void rt_cpu_init(uint32_t index)
{
    struct tss64 *t = &tss[index].t;
    t->ist[0] = (uint64_t)(df_stacks[index] + DF_STACK_SIZE);
    t->iomap_base = sizeof(*t);
    tss[index].iomap[sizeof(tss[index].iomap) - 1] = 0xff;

    /* 16-byte system descriptor (SDM vol. 3 s8.2.3). */
    uint64_t base = (uint64_t)t, limit = sizeof(tss[index]) - 1;
    uint64_t *d = &rt_gdt[RT_SEL_TSS0 / 8 + 2 * index];
    d[0] = (limit & 0xffff) | ((base & 0xffffff) << 16) | ((uint64_t)TSS_AVAILABLE << 40) |
           ((limit >> 16 & 0xf) << 48) | ((base >> 24 & 0xff) << 56);
    d[1] = base >> 32;

    struct __attribute__((packed)) {
        uint16_t limit;
        uint64_t base;
    } idtr = {sizeof(idt) - 1, (uint64_t)idt};
    __asm__ volatile("lidt %0" ::"m"(idtr));
    __asm__ volatile("ltr %w0" ::"r"(RT_SEL_TSS0 + 16 * index));
}

void rt_cpu_set_rsp0(uint32_t index, void *top) { tss[index].t.rsp[0] = (uint64_t)top; }

void rt_print_fatal(const struct rt_frame *f)
{
    rt_panic_printf("FATAL: unexpected %s vector %lu err 0x%lx rip 0x%lx cr2 0x%lx cs 0x%lx rflags 0x%lx rsp 0x%lx "
                    "ss 0x%lx lapic %u\n",
                    rt_vector_name(f->vector), f->vector, f->error, f->rip, read_cr2(), f->cs, f->rflags, f->rsp,
                    f->ss, rt_lapic_id());
}
