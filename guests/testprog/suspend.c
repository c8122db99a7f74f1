/* pvsuspend: the guest half of the suspend/wake tests (tests/suspend_test.cpp).
 *
 * pvsuspend [gsi=G] [n=N] [ack=PORT]: routes IOAPIC pin G (default 11, edge) and COM1's IRQ4 to
 * counting handlers, then, with IF=0, writes evmm's paravirtual suspend (port 0x6f4, value 1): this
 * vCPU is suspended until the VMM resumes it. Once resumed it writes the round number (1..N) to
 * PORT with a 32-bit out, if given, before anything else (the wake-latency benchmark's doorbell),
 * then opens a 1 ms interrupt window, so interrupts that woke it and are still pending are
 * delivered now. It does this N times (default 1) and prints
 *   pvsuspend: resumed, gsi <n> serial <bytes>
 * with the interrupts pin G's handler counted and the bytes COM1's interrupt handler received. */
#include "testprog.h"

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
    uint64_t rounds = 1, ack = 0;
    const char *ns = rt_arg("n"), *as = rt_arg("ack");
    if (ns && (!rt_parse_u64(ns, &rounds) || rounds == 0 || rounds > 1000000))
        tp_fail(RT_EXIT_BAD_CMDLINE, "pvsuspend: bad n '%s' (1..1000000)", ns);
    if (as && (!rt_parse_u64(as, &ack) || ack == 0 || ack > 0xfffc))
        tp_fail(RT_EXIT_BAD_CMDLINE, "pvsuspend: bad ack port '%s'", as);
    rt_set_irq_handler(WAKE_VECTOR, on_gsi);
    rt_ioapic_route((uint32_t)gsi, WAKE_VECTOR, rt_lapic_id());
    rt_serial_irq_enable();
    irq_disable();
    rt_printf("pvsuspend: suspending\n");
    for (uint32_t round = 1; round <= rounds; round++) {
        rt_pv_suspend();
        if (ack)
            outl((uint16_t)ack, round);
        /* Resumed. Whatever woke us is still pending: let it in. */
        irq_enable(); /* a 1 ms window: the emulator may run a few instructions before it injects */
        rt_sleep_us(1000);
        irq_disable();
    }
    char c;
    while (rt_serial_irq_getc(&c))
        serial_irqs++;
    rt_printf("pvsuspend: resumed, gsi %u serial %u\n", gsi_irqs, serial_irqs);
}

/* s3 [alarm=S]: ACPI S3 with a real-mode waking vector. Copies the s3_wake.S stub to 0x7000, writes
 * a marker at 0x6000 and the vector into the FACS, optionally sets an RTC alarm S seconds ahead with
 * AIE and PM1_EN.RTC_EN, prints `s3: sleeping`, and writes SLP_TYP=1|SLP_EN to PM1a_CNT. On wake the
 * stub exits with 0x33 (status 103) when the marker survived. If the VMM ignores the request:
 * `s3: still running`. */
#define S3_VECTOR 0x7000
#define S3_MARKER_AT 0x6000
#define S3_MARKER 0x53334f4bu
#define PM1A_EN 0x602
#define PM1_RTC 0x400
#define SLP_TYP_S3 (1u << 10)
#define SLP_EN (1u << 13)

extern const uint8_t s3_stub[], s3_stub_end[];

void action_s3(void)
{
    struct rt_acpi acpi;
    if (!rt_acpi_scan(&acpi) || !acpi.facs)
        tp_fail(RT_EXIT_ACTION_FAILED, "s3: no FACS (%s)", acpi.error);
    memcpy(phys_ptr(S3_VECTOR), s3_stub, (size_t)(s3_stub_end - s3_stub));
    *(volatile uint32_t *)phys_ptr(S3_MARKER_AT) = S3_MARKER;
    *(volatile uint32_t *)phys_ptr(acpi.facs + 12) = S3_VECTOR; /* firmware_waking_vector */
    uint64_t secs = 0;
    const char *as = rt_arg("alarm");
    if (as && (!rt_parse_u64(as, &secs) || secs == 0 || secs > 59))
        tp_fail(RT_EXIT_BAD_CMDLINE, "s3: bad alarm '%s' (1..59 seconds)", as);
    if (secs) {
        rt_cmos_write(0x0b, 0x06); /* binary, 24-hour, no interrupts while we set the alarm */
        uint32_t now = rt_cmos_read(0x00);
        rt_cmos_write(0x01, (uint8_t)((now + secs) % 60)); /* seconds alarm */
        rt_cmos_write(0x03, 0xff);                           /* any minute */
        rt_cmos_write(0x05, 0xff);                           /* any hour */
        (void)rt_cmos_read(0x0c);
        rt_cmos_write(0x0b, 0x26); /* AIE */
        outw(PM1A_EN, PM1_RTC);
    }
    irq_disable();
    rt_printf("s3: sleeping\n");
    outw(acpi.pm1a_cnt, SLP_TYP_S3 | SLP_EN);
    rt_printf("s3: still running\n");
}
