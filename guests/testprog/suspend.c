/* pvsuspend: the guest half of the suspend/wake tests (tests/suspend_test.cpp).
 *
 * pvsuspend [gsi=G]: routes IOAPIC pin G (default 11, edge) and COM1's IRQ4 to counting handlers,
 * then, with IF=0, writes evmm's paravirtual suspend (port 0x6f4, value 1): this vCPU is suspended
 * until the VMM resumes it. Afterwards it opens a 1 ms interrupt window, so interrupts
 * that woke it and are still pending are delivered now, and prints
 *   pvsuspend: resumed, gsi <n> serial <bytes>
 * with the interrupts pin G's handler counted and the bytes COM1's interrupt handler received. */
#include "testprog.h"

#define PV_CONTROL_PORT 0x6f4
#define PV_SUSPEND 1
#define WAKE_GSI_DEFAULT 11
#define WAKE_VECTOR (RT_VEC_USER + 0x11)

static volatile uint32_t gsi_irqs, serial_irqs;

static void on_gsi(struct rt_frame *f)
{
    (void)f;
    gsi_irqs++;
}

void action_pvsuspend(void)
{
    uint64_t gsi = WAKE_GSI_DEFAULT;
    const char *gs = rt_arg("gsi");
    if (gs && (!rt_parse_u64(gs, &gsi) || gsi > 23))
        tp_fail(RT_EXIT_BAD_CMDLINE, "pvsuspend: bad gsi '%s' (0..23)", gs);
    rt_set_irq_handler(WAKE_VECTOR, on_gsi);
    rt_ioapic_route((uint32_t)gsi, WAKE_VECTOR, rt_lapic_id());
    rt_serial_irq_enable();
    irq_disable();
    rt_printf("pvsuspend: suspending\n");
    outb(PV_CONTROL_PORT, PV_SUSPEND);
    /* Resumed. Whatever woke us is still pending: let it in. */
    irq_enable(); /* a 1 ms window: the emulator may run a few instructions before it injects */
    rt_sleep_us(1000);
    irq_disable();
    char c;
    while (rt_serial_irq_getc(&c))
        serial_irqs++;
    rt_printf("pvsuspend: resumed, gsi %u serial %u\n", gsi_irqs, serial_irqs);
}
