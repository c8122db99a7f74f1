/* The RTC's interrupts and update cycle as a guest sees them (tests/rtc_test.cpp).
 *
 *   rtcalarm     an alarm two seconds ahead with AIE, IRQ8 routed through the IOAPIC, sti;hlt until it comes,
 *                then reads the time: it must be the alarm's second
 *   rtcuip       polls register A until UIP rises and falls, for at most 3.3 s: one update cycle should do,
 *                but on a loaded host the vCPU thread can be off the CPU for every 2.2 ms window of a second
 *   rtcpie=<RS>  register A rate select RS (1..15) with PIE for 250 ms, counting interrupts, and apart those
 *                whose register C had IRQF: an irqfd level line can deliver an extra interrupt after the
 *                source went quiet (event/eventfd_interrupt_line.h), and its C then reads without IRQF
 *
 * The CMOS index/data pair is only used with IF=0, or from the handler, so the handler's own index write can
 * never split the main code's pair. The handler reads register C, which acknowledges the interrupt: the
 * device drops its line before the runtime's EOI. Each port access is a VM exit, so the waits halt rather
 * than poll, and the UIP poll keeps register A selected and reads only the data port.
 *
 * Elapsed time comes from the LAPIC timer's current count, not the TSC: rt_tsc_khz() samples 2 ms, and a
 * vCPU preempted inside that sample (a loaded host) can be off by a factor of several. */
#include "testprog.h"

#define RTC_GSI 8
#define RTC_VECTOR (RT_VEC_USER + 0x18)
#define PM1A_STS 0x600 /* evmm's (and QEMU's PIIX4) PM1a event block */
#define PM1_RTC_STS (1u << 10)

enum rtc_reg { REG_SEC = 0x00, REG_SEC_ALARM = 0x01, REG_MIN = 0x02, REG_MIN_ALARM = 0x03, REG_HOUR = 0x04,
               REG_HOUR_ALARM = 0x05, REG_A = 0x0a, REG_B = 0x0b, REG_C = 0x0c };
#define A_UIP 0x80
#define A_DIVIDER 0x20 /* 32.768 kHz time base */
#define B_PIE 0x40
#define B_AIE 0x20
#define B_BINARY 0x04
#define B_24H 0x02
#define C_IRQF 0x80

static volatile uint32_t rtc_irqs, rtc_irqf; /* interrupts taken; those whose register C had IRQF */
static volatile uint8_t rtc_c_seen; /* every register C value the handler read, ORed */

/* The LAPIC timer as a stopwatch: one-shot at divide-by-128, so one count is 128 ns on KVM's 1 GHz APIC bus (the
 * runtime assumes the same). Its expiry interrupts on RT_VEC_TIMEOUT, whose runtime handler ignores a wait it did
 * not start, so a halted loop wakes at the deadline even if no RTC interrupt comes. */
enum { LAPIC_LVT_TIMER = 0x320, LAPIC_TIMER_INIT = 0x380, LAPIC_TIMER_CURRENT = 0x390, LAPIC_TIMER_DIV = 0x3e0 };
#define STOPWATCH_NS_PER_COUNT 128

static uint32_t stopwatch_counts;

static void stopwatch_start(uint32_t ms)
{
    stopwatch_counts = (uint32_t)((uint64_t)ms * 1000000 / STOPWATCH_NS_PER_COUNT);
    mmio_write32(RT_LAPIC_BASE + LAPIC_TIMER_DIV, 0xa); /* divide by 128 */
    mmio_write32(RT_LAPIC_BASE + LAPIC_LVT_TIMER, RT_VEC_TIMEOUT);
    mmio_write32(RT_LAPIC_BASE + LAPIC_TIMER_INIT, stopwatch_counts);
}

static uint64_t stopwatch_us(void)
{
    uint32_t left = mmio_read32(RT_LAPIC_BASE + LAPIC_TIMER_CURRENT);
    return (uint64_t)(stopwatch_counts - left) * STOPWATCH_NS_PER_COUNT / 1000;
}

static bool stopwatch_done(void) { return mmio_read32(RT_LAPIC_BASE + LAPIC_TIMER_CURRENT) == 0; }

static inline uint16_t in16(uint16_t port)
{
    uint16_t v;
    __asm__ volatile("inw %1, %0" : "=a"(v) : "Nd"(port));
    return v;
}


static void rtc_irq(struct rt_frame *f)
{
    (void)f;
    uint8_t c = rt_cmos_read(REG_C);
    rtc_c_seen |= c;
    rtc_irqs++;
    rtc_irqf += (c & C_IRQF) != 0;
}

static bool rtc_irq_seen(void *arg)
{
    (void)arg;
    return rtc_irqs != 0;
}

/* With IF=0: clears stale flags and routes IRQ8 (edge, like every ISA IRQ the runtime routes) to the handler. */
static void rtc_irq_setup(void)
{
    irq_disable();
    rt_cmos_read(REG_C);
    rtc_irqs = 0;
    rtc_irqf = 0;
    rtc_c_seen = 0;
    rt_set_irq_handler(RTC_VECTOR, rtc_irq);
    rt_ioapic_route(RTC_GSI, RTC_VECTOR, rt_lapic_id());
}

void action_rtc_alarm(void)
{
    bool irqs_were_on = read_rflags() & (1u << 9);
    rtc_irq_setup();
    uint8_t a = rt_cmos_read(REG_A), b = rt_cmos_read(REG_B);
    rt_cmos_write(REG_A, A_DIVIDER); /* no periodic rate: the only flags are UF and AF */
    rt_cmos_write(REG_B, B_BINARY | B_24H);
    for (int spins = 0; (rt_cmos_read(REG_A) & A_UIP) && spins < 10000; spins++)
        ;
    uint32_t t = (rt_cmos_read(REG_HOUR) * 60u + rt_cmos_read(REG_MIN)) * 60u + rt_cmos_read(REG_SEC);
    t = (t + 2) % 86400;
    rt_cmos_write(REG_SEC_ALARM, (uint8_t)(t % 60));
    rt_cmos_write(REG_MIN_ALARM, (uint8_t)(t / 60 % 60));
    rt_cmos_write(REG_HOUR_ALARM, (uint8_t)(t / 3600));
    rt_cmos_read(REG_C);
    rt_cmos_write(REG_B, B_AIE | B_BINARY | B_24H);
    bool got = rt_wait(rtc_irq_seen, NULL, 5000000); /* halts with sti;hlt; returns with IF=0 */
    uint32_t h = rt_cmos_read(REG_HOUR), m = rt_cmos_read(REG_MIN), sec = rt_cmos_read(REG_SEC);
    rt_cmos_write(REG_B, b);
    rt_cmos_write(REG_A, a);
    uint16_t pm1_sts = in16(PM1A_STS);
    outw(PM1A_STS, PM1_RTC_STS); /* write 1 to clear */
    if (irqs_were_on)
        irq_enable();
    if (!got)
        tp_fail(RT_EXIT_ACTION_FAILED, "rtcalarm: no interrupt in 5000 ms (pm1_sts 0x%x)", pm1_sts);
    rt_printf("rtcalarm: %u irq at %02u:%02u:%02u, alarm %02u:%02u:%02u, c 0x%x, pm1_sts 0x%x\n", rtc_irqs, h, m, sec,
              t / 3600, t / 60 % 60, t % 60, rtc_c_seen, pm1_sts);
}

void action_rtc_uip(void)
{
    uint32_t polls = 0;
    uint64_t rose = 0, fell = 0;
    bool seen_low = false;
    stopwatch_start(3300);
    outb(0x70, REG_A);
    while (!fell && !stopwatch_done()) {
        bool uip = inb(0x71) & A_UIP;
        polls++;
        if (!rose && uip && seen_low)
            rose = stopwatch_us();
        else if (rose && !uip)
            fell = stopwatch_us();
        seen_low |= !uip;
    }
    rt_lapic_timer_stop();
    if (!fell)
        tp_fail(RT_EXIT_ACTION_FAILED, "rtcuip: UIP did not rise and fall in 3300 ms (%u polls, rose %s)", polls,
                rose ? "yes" : "no");
    rt_printf("rtcuip: rose after %lu ms, high %lu us, %u polls\n", rose / 1000, fell - rose, polls);
}

void action_rtc_pie(void)
{
    uint64_t rs;
    if (!tp_value || !rt_parse_u64(tp_value, &rs) || rs < 1 || rs > 15)
        tp_fail(RT_EXIT_BAD_CMDLINE, "rtcpie: bad rate select '%s' (1..15)", tp_value ? tp_value : "");
    uint32_t hz = rs <= 2 ? 256u >> (rs - 1) : 65536u >> rs; /* MC146818A Table 5, 32.768 kHz time base */
    bool irqs_were_on = read_rflags() & (1u << 9);
    rtc_irq_setup();
    uint8_t a = rt_cmos_read(REG_A), b = rt_cmos_read(REG_B);
    rt_cmos_write(REG_A, (uint8_t)(A_DIVIDER | rs));
    stopwatch_start(250);
    rt_cmos_write(REG_B, b | B_PIE);
    while (!stopwatch_done()) { /* each RTC interrupt, and the stopwatch's expiry, ends a hlt */
        irq_enable_and_halt();
        irq_disable();
    }
    rt_cmos_write(REG_B, b);
    uint64_t ms = stopwatch_us() / 1000;
    rt_lapic_timer_stop();
    rt_cmos_read(REG_C);
    rt_cmos_write(REG_A, a);
    if (irqs_were_on)
        irq_enable();
    rt_printf("rtcpie: %u Hz, %u interrupts (%u with IRQF) in %lu ms, c 0x%x\n", hz, rtc_irqs, rtc_irqf, ms,
              rtc_c_seen);
}
