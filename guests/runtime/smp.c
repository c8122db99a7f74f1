/* Application processor start-up (Intel SDM vol. 3 s9.4.4, MP spec 1.4 appendix B.4) and a mailbox per
 * AP through which the BSP hands it work. APs take CPU indices in arrival order; vCPU i of evmm has APIC
 * ID i, but nothing here relies on it. */
#include "internal.h"

#define ICR_INIT (5u << 8)
#define ICR_STARTUP (6u << 8)
#define ICR_ASSERT (1u << 14)
#define ICR_ALL_BUT_SELF (3u << 18)
/* Generous: it is wall-clock time, and on a loaded host a vCPU thread can wait long for a core. */
#define RT_SMP_TIMEOUT_US 5000000
#ifdef __x86_64__
#define RT_SP "rsp"
#else /* the 32-bit runtime of guests/xen/rt32 builds this file too */
#define RT_SP "esp"
#endif

struct mailbox {
    void (*volatile fn)(void *);
    void *volatile arg;
    volatile bool done;
};
static struct cpu_state {
    uint32_t apic_id;
    volatile bool online;
    struct mailbox mailbox;
} cpus[RT_MAX_CPUS];

static volatile uint32_t arrived = 0;     /* APs that finished start-up */
static volatile uint32_t report_turn = 1; /* index of the next AP allowed to report */
static uint32_t expected_aps, cpus_up = 1;
static rt_ap_report report_fn;
static bool started;

uint32_t rt_cpu_index(void)
{
    /* Each CPU runs on its own 16 KiB-aligned stack from rt_stacks, so the stack pointer names the CPU. */
    uintptr_t sp;
    __asm__("mov %%" RT_SP ", %0" : "=r"(sp));
    uintptr_t i = (sp - (uintptr_t)rt_stacks) >> RT_STACK_SHIFT;
    return i < RT_MAX_CPUS ? (uint32_t)i : 0;
}

uint32_t rt_cpu_count(void) { return cpus_up; }
uint32_t rt_cpu_apic_id(uint32_t index) { return index < RT_MAX_CPUS ? cpus[index].apic_id : ~0u; }

static bool all_arrived(void *arg)
{
    (void)arg;
    return __atomic_load_n(&arrived, __ATOMIC_ACQUIRE) >= expected_aps;
}

uint32_t rt_smp_start(rt_ap_report report)
{
    if (started)
        return cpus_up;
    started = true;
    report_fn = report;
    cpus[0].apic_id = rt_lapic_id();
    cpus[0].online = true;
    uint32_t n = rt_fwcfg_nb_cpus();
    expected_aps = (n > RT_MAX_CPUS ? RT_MAX_CPUS : n) - 1;
    if (expected_aps == 0)
        return cpus_up;

    memcpy(phys_ptr(RT_AP_TRAMPOLINE), rt_ap_trampoline, (size_t)(rt_ap_trampoline_end - rt_ap_trampoline));
    /* INIT, 10 ms, STARTUP, 200 us, STARTUP (SDM s9.4.4.1), broadcast to all but ourselves. The second
     * STARTUP is only sent if an AP is still missing: a started AP ignores it anyway. */
    rt_lapic_icr(0, ICR_ALL_BUT_SELF | ICR_ASSERT | ICR_INIT);
    rt_sleep_us(10000);
    rt_lapic_icr(0, ICR_ALL_BUT_SELF | ICR_ASSERT | ICR_STARTUP | (RT_AP_TRAMPOLINE >> 12));
    if (!rt_wait(all_arrived, NULL, 200)) {
        rt_lapic_icr(0, ICR_ALL_BUT_SELF | ICR_ASSERT | ICR_STARTUP | (RT_AP_TRAMPOLINE >> 12));
        rt_wait(all_arrived, NULL, RT_SMP_TIMEOUT_US);
    }
    cpus_up = 1 + __atomic_load_n(&arrived, __ATOMIC_ACQUIRE);
    return cpus_up;
}

void rt_smp_ap_main(uint32_t index)
{
    rt_cpu_init(index);
    rt_lapic_init();
    struct cpu_state *self = &cpus[index];
    self->apic_id = rt_lapic_id();
    /* Report in index order so the console output is deterministic; bounded in case a lower AP stalls. */
    for (int i = 0; i < 200000 && __atomic_load_n(&report_turn, __ATOMIC_ACQUIRE) != index; i++)
        cpu_relax();
    if (report_fn)
        report_fn(index, self->apic_id);
    self->online = true;
    __atomic_fetch_add(&arrived, 1, __ATOMIC_RELEASE);
    __atomic_store_n(&report_turn, index + 1, __ATOMIC_RELEASE);
    rt_lapic_send_ipi(cpus[0].apic_id, RT_VEC_NOTIFY);

    /* Wait for work with interrupts off except inside sti;hlt, so a wake-up IPI cannot be missed. */
    for (;;) {
        irq_disable();
        void (*fn)(void *) = self->mailbox.fn;
        if (!fn) {
            irq_enable_and_halt();
            continue;
        }
        self->mailbox.fn = NULL;
        fn(self->mailbox.arg);
        __atomic_store_n(&self->mailbox.done, true, __ATOMIC_RELEASE);
        rt_lapic_send_ipi(cpus[0].apic_id, RT_VEC_NOTIFY);
    }
}

static bool mailbox_done(void *arg) { return __atomic_load_n(&((struct mailbox *)arg)->done, __ATOMIC_ACQUIRE); }

bool rt_run_on(uint32_t index, void (*fn)(void *), void *arg)
{
    if (index == rt_cpu_index()) {
        fn(arg);
        return true;
    }
    if (index >= RT_MAX_CPUS || !cpus[index].online)
        return false;
    struct mailbox *m = &cpus[index].mailbox;
    m->done = false;
    m->arg = arg;
    __atomic_store_n(&m->fn, fn, __ATOMIC_RELEASE);
    rt_lapic_send_ipi(cpus[index].apic_id, RT_VEC_WAKE);
    return rt_wait(mailbox_done, m, RT_SMP_TIMEOUT_US);
}
