/* Words about Xen's per-vCPU singleshot timer and VIRQ_TIMER: timer, mask, block. All run on vCPU 0;
 * Xen only lets a vCPU arm and stop its own singleshot timer (VCPUOP_set_singleshot_timer from another
 * vCPU is -EINVAL). */
#include "xentest.h"

/* Arms a timer delay_ns ahead through arm(deadline), waits up to 2 s of system time for VIRQ_TIMER, and
 * returns how long after arming the handler ran. */
static uint32_t fire_after(const char *how, uint64_t delay_ns, int (*arm)(uint64_t))
{
    uint32_t t = xt_timer_port_get();
    uint32_t before = xt_port_count(t);
    uint64_t t0 = xt_now();
    xt_step("%s %llu us ahead (now %llu us)", how, (unsigned long long)(delay_ns / XT_US),
            (unsigned long long)(t0 / XT_US));
    int rc = arm(t0 + delay_ns);
    if (rc != 0)
        xt_fail("%s returned %d", how, rc);
    if (!xt_wait_count(t, before, 2000 * XT_MS))
        xt_fail("%s: no VIRQ_TIMER within 2 s (timer due after %llu us; %s)", how,
                (unsigned long long)(delay_ns / XT_US), xt_event_state(t, 0));
    uint64_t fired = xt_port_time(t);
    if (fired + XT_EARLY_SLACK_NS < t0 + delay_ns)
        xt_fail("%s: VIRQ_TIMER handled after %u us, before the %llu us deadline", how, xt_us_since(t0, fired),
                (unsigned long long)(delay_ns / XT_US));
    return xt_us_since(t0, fired);
}

static int arm_timer_op(uint64_t deadline) { return (int)HYPERVISOR_set_timer_op(deadline); }

void word_timer(const char *value)
{
    (void)value;
    uint32_t us = fire_after("VCPUOP_set_singleshot_timer", 10 * XT_MS, xt_singleshot);
    xt_printf("timer: fired after %u us\n", us);
    us = fire_after("set_timer_op", 5 * XT_MS, arm_timer_op);
    xt_printf("timer: set_timer_op fired after %u us\n", us);

    uint32_t t = xt_timer_port, before = xt_port_count(t);
    uint64_t t0 = xt_now();
    xt_step("VCPUOP_set_singleshot_timer 20000 us ahead, then VCPUOP_stop_singleshot_timer");
    int rc = xt_singleshot(t0 + 20 * XT_MS);
    if (rc != 0)
        xt_fail("VCPUOP_set_singleshot_timer returned %d", rc);
    if ((rc = xt_stop_singleshot()) != 0)
        xt_fail("VCPUOP_stop_singleshot_timer returned %d", rc);
    xt_step("waiting 50000 us for no VIRQ_TIMER");
    if (xt_wait_count(t, before, 50 * XT_MS))
        xt_fail("VIRQ_TIMER on port %u %u us after arming a 20000 us timer that was stopped", t,
                xt_us_since(t0, xt_port_time(t)));
    xt_printf("timer: stop ok\n");
    /* The port stays bound for mask. */
}

void word_mask(const char *value)
{
    (void)value;
    uint32_t t = xt_timer_port_get(), before = xt_port_count(t);
    xt_step("masking port %u", t);
    xt_mask(t);
    uint64_t t0 = xt_now();
    xt_step("VCPUOP_set_singleshot_timer 5000 us ahead, then 30000 us with interrupts enabled");
    int rc = xt_singleshot(t0 + 5 * XT_MS);
    if (rc != 0)
        xt_fail("VCPUOP_set_singleshot_timer returned %d", rc);
    if (xt_wait_count(t, before, 30 * XT_MS))
        xt_fail("the handler of masked port %u ran %u us after arming the timer", t, xt_us_since(t0, xt_port_time(t)));
    if (!xt_pending(t))
        xt_fail("port %u is not pending 30000 us after its 5000 us timer (masked, so it must stay pending)", t);
    xt_step("EVTCHNOP_unmask %u", t);
    uint64_t t1 = xt_now();
    if ((rc = xt_unmask(t)) != 0)
        xt_fail("EVTCHNOP_unmask(%u) returned %d", t, rc);
    if (!xt_wait_count(t, before, 1000 * XT_MS))
        xt_fail("no upcall for port %u within 1 s of EVTCHNOP_unmask (%s)", t, xt_event_state(t, 0));
    xt_step("handler ran %u us after the unmask", xt_us_since(t1, xt_port_time(t)));
    xt_printf("mask: pending while masked, delivered on unmask\n");
    xt_timer_port_close();
}

/* SCHEDOP_block with IF=1, which must return 0; the system time it returned at. Interrupts are off again
 * afterwards, so the caller decides when the pending one is taken. */
static uint64_t block_with_interrupts_on(void)
{
    irq_enable();
    long brc = HYPERVISOR_sched_op(SCHEDOP_block, NULL);
    irq_disable();
    uint64_t woke = xt_now();
    if (brc != 0)
        xt_fail("SCHEDOP_block returned %ld", brc);
    return woke;
}

void word_block(const char *value)
{
    (void)value;
    uint32_t t = xt_timer_port_get(), before = xt_port_count(t);
    uint64_t t0 = xt_now();
    xt_step("VCPUOP_set_singleshot_timer 10000 us ahead, then SCHEDOP_block with interrupts enabled");
    int rc = xt_singleshot(t0 + 10 * XT_MS);
    if (rc != 0)
        xt_fail("VCPUOP_set_singleshot_timer returned %d", rc);
    /* Xen's HVM SCHEDOP_block returns once an event is pending for the vCPU; with IF=1 the upcall is
     * taken as soon as the hypercall returns. */
    uint64_t woke = block_with_interrupts_on();
    if (woke + XT_EARLY_SLACK_NS < t0 + 10 * XT_MS)
        xt_fail("SCHEDOP_block returned after %u us, before the 10000 us timer (handler ran %u)",
                xt_us_since(t0, woke), xt_port_count(t) - before);
    if (!xt_wait_count(t, before, 1000 * XT_MS))
        xt_fail("SCHEDOP_block returned after %u us but no VIRQ_TIMER upcall came within 1 s (%s)",
                xt_us_since(t0, woke), xt_event_state(t, 0));
    xt_printf("block: woke after %u us, timer handler ran %u\n", xt_us_since(t0, woke), xt_port_count(t) - before);
}

/* SCHEDOP_block with no event channel involved: the in-kernel LAPIC timer's interrupt must end it. */
#define BLOCK_LAPIC_VECTOR 0x50

static volatile uint32_t lapic_ticks;

static void on_lapic_timer(struct rt_frame *f)
{
    (void)f;
    lapic_ticks++;
}

void word_block_lapic(const char *value)
{
    (void)value;
    rt_set_irq_handler(BLOCK_LAPIC_VECTOR, on_lapic_timer);
    uint32_t before = lapic_ticks;
    uint64_t t0 = xt_now();
    xt_step("LAPIC timer one-shot 10000 us ahead (vector 0x%x, no event channel), then SCHEDOP_block", BLOCK_LAPIC_VECTOR);
    rt_lapic_timer_start(BLOCK_LAPIC_VECTOR, 10 * 1000 * 1000, false); /* KVM's APIC timer counts ns */
    uint64_t woke = block_with_interrupts_on();
    for (int i = 0; i < 1000 && lapic_ticks == before; i++) {
        irq_enable();
        cpu_relax();
        irq_disable();
    }
    if (lapic_ticks == before)
        xt_fail("SCHEDOP_block returned after %u us but the LAPIC timer's handler never ran", xt_us_since(t0, woke));
    rt_lapic_timer_stop();
    xt_printf("block-lapic: woke after %u us, lapic timer handler ran %u\n", xt_us_since(t0, woke), lapic_ticks - before);
}
