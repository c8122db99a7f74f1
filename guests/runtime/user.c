/* CPL3 support for rt_run_user: user-accessible page tables, a user stack, a stack for the way back, and
 * the #UD gate that takes CPL3 code back while it runs (user.S). */
#include "internal.h"

#define PTE_US 0x4

extern uint64_t rt_pml4[], rt_pdpt[], rt_pd[];
void rt_run_user_asm(void (*fn)(void *), void *arg, void *user_stack_top);
void rt_user_return_entry(void);

static uint8_t user_stack[4096] __attribute__((aligned(16)));
/* RSP0: where the CPU pushes the frame of any event taken at CPL3. Without it the first such event would
 * end in a triple fault. */
static uint8_t trap_stack[4096] __attribute__((aligned(16)));

/* The identity map is built without the user bit; CPL3 needs it at every level. The runtime never sets
 * CR4.SMEP or SMAP, so user pages stay usable from CPL0. */
static void map_everything_for_user(void)
{
    static bool done;
    if (done)
        return;
    rt_pml4[0] |= PTE_US;
    for (int i = 0; i < 4; i++)
        rt_pdpt[i] |= PTE_US;
    for (int i = 0; i < 2048; i++)
        rt_pd[i] |= PTE_US;
    uint64_t cr3;
    __asm__ volatile("mov %%cr3, %0; mov %0, %%cr3" : "=r"(cr3)::"memory");
    done = true;
}

void rt_run_user(void (*fn)(void *), void *arg)
{
    map_everything_for_user();
    rt_cpu_set_rsp0(0, trap_stack + sizeof(trap_stack));
    rt_idt_set_raw_gate(RT_VEC_UD, rt_user_return_entry);
    bool irqs_were_on = read_rflags() & (1u << 9);
    irq_disable();
    rt_run_user_asm(fn, arg, user_stack + sizeof(user_stack));
    rt_idt_restore_gate(RT_VEC_UD);
    if (irqs_were_on)
        irq_enable();
}
