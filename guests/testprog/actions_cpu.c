/* Actions about the CPUs: AP start-up, CPUID as each CPU sees it, timer interrupts and exceptions. */
#include "testprog.h"

static void report_ap(uint32_t index, uint32_t apic_id) { rt_printf("cpu %u apic %u up\n", index, apic_id); }

void action_smp(void)
{
    uint32_t want = rt_fwcfg_nb_cpus();
    if (want > RT_MAX_CPUS)
        want = RT_MAX_CPUS;
    uint32_t n = rt_smp_start(report_ap);
    for (uint32_t i = 0; i < n; i++)
        for (uint32_t j = 0; j < i; j++)
            if (rt_cpu_apic_id(i) == rt_cpu_apic_id(j))
                tp_fail(RT_EXIT_SMP_FAILED, "smp: cpus %u and %u share apic id %u", j, i, rt_cpu_apic_id(i));
    if (n < want)
        tp_fail(RT_EXIT_SMP_FAILED, "smp: only %u of %u cpus up", n, want);
    rt_printf("smp: %u cpus up\n", n);
}

static void cpuid_string(char out[13], uint32_t a, uint32_t b, uint32_t c)
{
    memcpy(out, &a, 4);
    memcpy(out + 4, &b, 4);
    memcpy(out + 8, &c, 4);
    out[12] = '\0';
}

static void cpuid_report(void *arg)
{
    (void)arg;
    struct cpuid_regs r0 = cpuid(0, 0), r1 = cpuid(1, 0);
    char vendor[13], hv[13] = "none", x2[12] = "none";
    cpuid_string(vendor, r0.ebx, r0.edx, r0.ecx);
    if (r1.ecx & (1u << 31)) { /* the hypervisor-present bit guards leaves 0x40000000 and up */
        struct cpuid_regs h = cpuid(0x40000000, 0);
        cpuid_string(hv, h.ebx, h.ecx, h.edx);
    }
    if (r0.eax >= 0xb)
        rt_snprintf(x2, sizeof(x2), "%u", cpuid(0xb, 0).edx);
    rt_printf("cpuid: cpu %u vendor %s hypervisor %s apic %u x2apic %s\n", rt_cpu_index(), vendor, hv, r1.ebx >> 24,
              x2);
}

void action_cpuid(void)
{
    for (uint32_t i = 0; i < rt_cpu_count(); i++)
        if (!rt_run_on(i, cpuid_report, NULL))
            tp_fail(RT_EXIT_SMP_FAILED, "cpuid: cpu %u did not run its report", i);
}

#define TICKS 5
#define TICK_NS 1000000 /* 1 ms: above KVM's minimum periodic timer period (200 us) */

static volatile uint32_t ticks;
static volatile uint64_t fault_vector, fault_rip;

static void on_tick(struct rt_frame *f)
{
    (void)f;
    ticks++;
}

/* Records a fault and resumes after the 2-byte faulting instruction (ud2, and div %ecx as encoded below). */
static void skip_fault(struct rt_frame *f)
{
    fault_vector = f->vector;
    fault_rip = f->rip;
    f->rip += 2;
}

static void expect_fault(const char *name, uint8_t vector, uint64_t where)
{
    if (fault_vector != vector || fault_rip != where)
        tp_fail(RT_EXIT_IRQ_FAILED, "exc: %s gave vector %lu at 0x%lx, expected %u at 0x%lx", name, fault_vector,
                fault_rip, vector, where);
    rt_printf("exc: %s ok\n", name);
    rt_set_handler(vector, NULL);
}

void action_irq(void)
{
    ticks = 0;
    rt_set_irq_handler(RT_VEC_USER, on_tick);
    rt_lapic_timer_start(RT_VEC_USER, TICK_NS, true);
    while (ticks < TICKS)
        irq_enable_and_halt(); /* interrupts are on only inside sti;hlt */
    irq_disable();
    rt_lapic_timer_stop();
    rt_printf("irq: %u ticks\n", ticks);

    /* Faults report the address of the faulting instruction itself (SDM vol. 3 s6.5). */
    uint64_t where;
    fault_vector = ~0ull;
    rt_set_handler(RT_VEC_UD, skip_fault);
    __asm__ volatile("leaq 1f(%%rip), %0\n1: ud2" : "=r"(where)::"memory");
    expect_fault("ud", RT_VEC_UD, where);

    fault_vector = ~0ull;
    rt_set_handler(RT_VEC_DE, skip_fault);
    __asm__ volatile("leaq 1f(%%rip), %0\n1: .byte 0xf7, 0xf1 /* divl %%ecx */"
                     : "=&r"(where)
                     : "a"(1), "d"(0), "c"(0)
                     : "memory");
    expect_fault("de", RT_VEC_DE, where);
}
