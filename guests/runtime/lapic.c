/* Local APIC in xAPIC mode (SDM vol. 3 ch. 11) and the IOAPIC (82093AA datasheet). Both are in-kernel
 * devices under evmm, so their MMIO exits never reach the VMM's userspace. */
#include "internal.h"

enum lapic_reg {
    LAPIC_ID = 0x20,
    LAPIC_EOI = 0xb0,
    LAPIC_SVR = 0xf0,
    LAPIC_ICR_LOW = 0x300,
    LAPIC_ICR_HIGH = 0x310,
    LAPIC_LVT_TIMER = 0x320,
    LAPIC_LVT_LINT0 = 0x350,
    LAPIC_TIMER_INIT = 0x380,
    LAPIC_TIMER_CURRENT = 0x390,
    LAPIC_TIMER_DIV = 0x3e0,
};
#define SVR_ENABLE 0x100
#define LVT_MASKED (1u << 16)
#define LVT_TIMER_PERIODIC (1u << 17)
#define ICR_PENDING (1u << 12)
#define ICR_ASSERT (1u << 14)
#define TIMER_DIV_1 0xb
#define TIMER_DIV_128 0xa

enum ioapic_reg { IOAPIC_REGSEL = 0x00, IOAPIC_WIN = 0x10, IOAPIC_REDTBL = 0x10 };

static inline uint32_t lapic_read(enum lapic_reg r) { return mmio_read32(RT_LAPIC_BASE + r); }
static inline void lapic_write(enum lapic_reg r, uint32_t v) { mmio_write32(RT_LAPIC_BASE + r, v); }

static volatile bool timed_out[RT_MAX_CPUS];

static void timeout_irq(struct rt_frame *f)
{
    (void)f;
    /* An expiry that raced with the end of an earlier wait can arrive late, after a new one-shot was
     * armed; only a timer that has counted down to zero means this wait is over. */
    if (lapic_read(LAPIC_TIMER_CURRENT) == 0)
        timed_out[rt_cpu_index()] = true;
}

static void ignore_irq(struct rt_frame *f) { (void)f; }

void rt_lapic_init(void)
{
    bool bsp = rt_cpu_index() == 0;
    /* The BSP's LINT0 comes out of reset as ExtINT (KVM and QEMU alike), so a firmware-programmed 8259
     * could inject into our exception vectors. Mask the 8259 first, while LINT0 still listens, so that its
     * INTR line drops and no request stays latched; then mask LINT0 too. */
    if (bsp) {
        outb(0x21, 0xff);
        outb(0xa1, 0xff);
    }
    lapic_write(LAPIC_SVR, SVR_ENABLE | RT_VEC_SPURIOUS);
    lapic_write(LAPIC_LVT_LINT0, LVT_MASKED);
    lapic_write(LAPIC_LVT_TIMER, LVT_MASKED);
    if (bsp) {
        rt_set_irq_handler(RT_VEC_TIMEOUT, timeout_irq);
        rt_set_irq_handler(RT_VEC_WAKE, ignore_irq);
        rt_set_irq_handler(RT_VEC_NOTIFY, ignore_irq);
    }
}

uint32_t rt_lapic_id(void) { return lapic_read(LAPIC_ID) >> 24; }

void rt_lapic_eoi(void) { lapic_write(LAPIC_EOI, 0); }

void rt_lapic_timer_start(uint8_t vector, uint32_t period_ns, bool periodic)
{
    lapic_write(LAPIC_TIMER_DIV, TIMER_DIV_1);
    lapic_write(LAPIC_LVT_TIMER, vector | (periodic ? LVT_TIMER_PERIODIC : 0));
    lapic_write(LAPIC_TIMER_INIT, period_ns); /* writing the initial count starts the timer */
}

void rt_lapic_timer_stop(void)
{
    lapic_write(LAPIC_TIMER_INIT, 0);
    lapic_write(LAPIC_LVT_TIMER, LVT_MASKED);
}

void rt_lapic_icr(uint32_t apic_id, uint32_t low)
{
    /* Wait for the previous IPI to leave (bounded: KVM delivers at once, so this normally reads once). */
    for (int i = 0; i < 10000 && (lapic_read(LAPIC_ICR_LOW) & ICR_PENDING); i++)
        cpu_relax();
    lapic_write(LAPIC_ICR_HIGH, apic_id << 24);
    lapic_write(LAPIC_ICR_LOW, low); /* the low write sends */
}

void rt_lapic_send_ipi(uint32_t apic_id, uint8_t vector) { rt_lapic_icr(apic_id, ICR_ASSERT | vector); }

void rt_ioapic_route(uint32_t gsi, uint8_t vector, uint32_t apic_id)
{
    /* Fixed delivery, physical destination, edge-triggered, active high: how ISA IRQs behave. */
    mmio_write32(RT_IOAPIC_BASE + IOAPIC_REGSEL, IOAPIC_REDTBL + 2 * gsi + 1);
    mmio_write32(RT_IOAPIC_BASE + IOAPIC_WIN, apic_id << 24);
    mmio_write32(RT_IOAPIC_BASE + IOAPIC_REGSEL, IOAPIC_REDTBL + 2 * gsi);
    mmio_write32(RT_IOAPIC_BASE + IOAPIC_WIN, vector);
}

bool rt_wait(bool (*done)(void *), void *arg, uint32_t timeout_us)
{
    if (done && done(arg))
        return true;
    uint32_t cpu = rt_cpu_index();
    bool interrupts_were_on = read_rflags() & (1u << 9);
    timed_out[cpu] = false;
    /* One count is 1 ns at divide-by-1; beyond 4.29 s switch to divide-by-128. */
    uint64_t ns = (uint64_t)timeout_us * 1000;
    lapic_write(LAPIC_LVT_TIMER, LVT_MASKED);
    lapic_write(LAPIC_TIMER_DIV, ns > 0xffffffffu ? TIMER_DIV_128 : TIMER_DIV_1);
    lapic_write(LAPIC_LVT_TIMER, RT_VEC_TIMEOUT);
    lapic_write(LAPIC_TIMER_INIT, (uint32_t)(ns > 0xffffffffu ? ns / 128 : ns ? ns : 1));
    bool ok = false;
    for (;;) {
        irq_disable();
        if ((done && (ok = done(arg))) || timed_out[cpu])
            break;
        /* Halting costs no emulated instructions; an interrupt (ours or the waker's IPI) resumes us. */
        irq_enable_and_halt();
    }
    rt_lapic_timer_stop();
    if (interrupts_were_on)
        irq_enable();
    return ok;
}

void rt_sleep_us(uint32_t us) { rt_wait(NULL, NULL, us); }

/* The TSC rate the hypervisor states in its timing leaf (CPUID 0x40000010 EAX, in kHz) beside KVM's
 * signature, or 0. evmm and QEMU (vmware-cpuid-freq) give it; it is exact, where a calibration is only
 * as good as the host is idle. */
static uint64_t tsc_khz_from_cpuid(void)
{
    struct cpuid_regs base = cpuid(0x40000000, 0);
    int kvm = base.ebx == 0x4b4d564b && base.ecx == 0x564b4d56 && base.edx == 0x4d; /* "KVMKVMKVM" */
    if (!kvm || base.eax < 0x40000010)
        return 0;
    return cpuid(0x40000010, 0).eax;
}

static bool tsc_khz_stated;

bool rt_tsc_khz_stated(void)
{
    (void)rt_tsc_khz();
    return tsc_khz_stated;
}

uint64_t rt_tsc_khz(void)
{
    static uint64_t khz;
    if (khz)
        return khz;
    khz = tsc_khz_from_cpuid();
    tsc_khz_stated = khz != 0;
    if (khz)
        return khz;
    /* Sample the TSC and the masked timer's current count back to back, 2 ms apart: interrupt latency,
     * which is large when CPL0 code is emulated, does not enter the measurement. */
    lapic_write(LAPIC_LVT_TIMER, LVT_MASKED);
    lapic_write(LAPIC_TIMER_DIV, TIMER_DIV_1);
    lapic_write(LAPIC_TIMER_INIT, 0xffffffffu);
    uint64_t t0 = rdtsc(), t1;
    uint32_t c0 = lapic_read(LAPIC_TIMER_CURRENT), c1;
    do {
        t1 = rdtsc();
        c1 = lapic_read(LAPIC_TIMER_CURRENT);
    } while (c0 - c1 < 2000000 && c1 != 0);
    rt_lapic_timer_stop();
    khz = c0 > c1 ? (t1 - t0) * 1000000 / (c0 - c1) : 0;
    return khz;
}
