/* The demo guest: a short tour of what this VM gave it, one line per step, every value measured from
 * inside the guest. It ends with an ACPI S5 poweroff, so `evmm run` exits 0. To add a section, write a
 * step function and list it in `tour` below. */
#include "rt/hw.h"
#include "rt/rt.h"
#include "rt/virtio.h"

struct tour_step {
    const char *label;
    /* Writes one line of findings into out; returns false when what it checked was wrong. */
    bool (*run)(char *out, size_t cap);
};

static bool step_boot(char *out, size_t cap)
{
    static const char *const formats[] = {"mb.elf", "ELF32", "mb.bin", "flat a.out-kludge", "pvh.elf", "ELF64"};
    const char *format = rt_boot.image_format;
    for (int i = 0; i < 6; i += 2)
        if (!strcmp(formats[i], rt_boot.image_format))
            format = formats[i + 1];
    rt_snprintf(out, cap, "%s (%s image), 32-bit entry, now in 64-bit long mode",
                rt_boot.protocol == RT_BOOT_PVH ? "PVH" : "Multiboot v1", format);
    return true;
}

static bool step_cmdline(char *out, size_t cap)
{
    rt_snprintf(out, cap, "\"%s\"", rt_boot.cmdline);
    return true;
}

static bool step_memory(char *out, size_t cap)
{
    uint64_t usable = 0, top = 0;
    for (uint32_t i = 0; i < rt_boot.n_mmap; i++) {
        const struct rt_mmap_entry *e = &rt_boot.mmap[i];
        if (e->type != 1)
            continue;
        usable += e->end - e->start;
        if (e->end <= (1ull << 32) && (e->end & ~0xfffull) > top)
            top = e->end & ~0xfffull;
    }
    if (!top) {
        rt_snprintf(out, cap, "no usable RAM in a %u-entry memory map", rt_boot.n_mmap);
        return false;
    }
    volatile uint64_t *w = phys_ptr(top - 8);
    uint64_t saved = *w, pattern = 0x0123456789abcdefull ^ top;
    *w = pattern;
    bool ok = *w == pattern;
    *w = saved;
    rt_snprintf(out, cap, "%u map entries, %lu MiB usable, last usable byte 0x%lx %s", rt_boot.n_mmap, usable >> 20,
                top - 1, ok ? "writable" : "did NOT read back");
    return ok;
}

static bool step_modules(char *out, size_t cap)
{
    uint64_t bytes = 0;
    for (uint32_t i = 0; i < rt_boot.n_modules; i++)
        bytes += rt_boot.modules[i].size;
    rt_snprintf(out, cap, "%u boot modules, %lu bytes", rt_boot.n_modules, bytes);
    return true;
}

static void cpuid_text(char s[13], uint32_t a, uint32_t b, uint32_t c)
{
    memcpy(s, &a, 4);
    memcpy(s + 4, &b, 4);
    memcpy(s + 8, &c, 4);
    s[12] = '\0';
}

static bool step_cpu(char *out, size_t cap)
{
    struct cpuid_regs v = cpuid(0, 0), l1 = cpuid(1, 0), h = cpuid(0x40000000, 0);
    char vendor[13], hv[13] = "none";
    cpuid_text(vendor, v.ebx, v.edx, v.ecx);
    if (l1.ecx & (1u << 31))
        cpuid_text(hv, h.ebx, h.ecx, h.edx);
    uint32_t family = (l1.eax >> 8) & 0xf;
    if (family == 0xf) /* SDM vol. 2 CPUID: the extended family adds on only to base family 15 */
        family += (l1.eax >> 20) & 0xff;
    rt_snprintf(out, cap, "vendor %s, family %u, hypervisor \"%s\"", vendor, family, hv);
    return true;
}

static bool step_smp(char *out, size_t cap)
{
    uint32_t want = rt_fwcfg_nb_cpus(), n = rt_smp_start(NULL);
    int len = rt_snprintf(out, cap, "%u of %u up (%s), APIC IDs", n, want,
                          want > 1 ? "APs started by INIT-SIPI-SIPI" : "the BSP alone");
    for (uint32_t i = 0; i < n && len < (int)cap; i++)
        len += rt_snprintf(out + len, cap - (size_t)len, " %u", rt_cpu_apic_id(i));
    return n == (want > RT_MAX_CPUS ? RT_MAX_CPUS : want);
}

static bool step_acpi(char *out, size_t cap)
{
    static struct rt_acpi a;
    if (!rt_acpi_scan(&a)) {
        rt_snprintf(out, cap, "problem: %s", a.error);
        return false;
    }
    char sigs[24 * 5 + 1] = "";
    for (uint32_t i = 0; i < a.n_tables; i++)
        rt_snprintf(sigs + 5 * i, 6, " %.4s", a.sigs[i]);
    rt_snprintf(out, cap, "RSDP rev %u, %s:%s, DSDT, FACS; checksums ok; MADT %u CPUs + IOAPIC; MP table %u CPUs",
                a.revision, a.xsdt ? "XSDT" : "RSDT", sigs, a.madt_cpus, a.mp_cpus);
    return a.madt_cpus == rt_fwcfg_nb_cpus() && a.madt_ioapics;
}

static bool step_fwcfg(char *out, size_t cap)
{
    if (!rt_fwcfg_present()) {
        rt_snprintf(out, cap, "no fw_cfg device at 0x510");
        return false;
    }
    rt_snprintf(out, cap, "signature QEMU, %u CPUs, %lu MiB RAM", rt_fwcfg_nb_cpus(), rt_fwcfg_ram_size() >> 20);
    return true;
}

static bool step_rtc(char *out, size_t cap)
{
    struct rt_time t;
    if (!rt_rtc_read(&t)) {
        rt_snprintf(out, cap, "the RTC never left its update cycle");
        return false;
    }
    rt_snprintf(out, cap, "%04u-%02u-%02u %02u:%02u:%02u (CMOS)", t.year, t.month, t.day, t.hour, t.minute, t.second);
    return true;
}

#define TICKS 5
#define TICK_NS 1000000u
static volatile uint32_t ticks;
static volatile uint64_t tick_tsc[TICKS + 1];

static void on_tick(struct rt_frame *f)
{
    (void)f;
    if (ticks <= TICKS)
        tick_tsc[ticks] = rdtsc();
    ticks++;
}

static bool step_timer(char *out, size_t cap)
{
    ticks = 0;
    rt_set_irq_handler(RT_VEC_USER, on_tick);
    rt_lapic_timer_start(RT_VEC_USER, TICK_NS, true);
    while (ticks <= TICKS)
        irq_enable_and_halt();
    irq_disable();
    rt_lapic_timer_stop();
    /* Between the first and the last tick, so start-up latency does not count; late ticks do. */
    uint64_t khz = rt_tsc_khz(), us = khz ? (tick_tsc[TICKS] - tick_tsc[0]) * 1000 / khz : 0;
    rt_snprintf(out, cap, "%u LAPIC timer interrupts at a 1 ms period; %u periods took %lu.%03lu ms by the TSC",
                TICKS + 1, TICKS, us / 1000, us % 1000);
    return khz != 0;
}

static bool step_tsc(char *out, size_t cap)
{
    uint64_t khz = rt_tsc_khz();
    rt_snprintf(out, cap, "%lu.%03lu MHz, %s", khz / 1000, khz % 1000,
                rt_tsc_khz_stated() ? "as the hypervisor states it (CPUID 0x40000010)" : "measured against the LAPIC timer");
    return khz != 0;
}


/* The event plane: evmm's doorbell device (port 0x6f0, MMIO 0xd0000000) is caught by ioeventfds and
 * answers every ring with an edge on GSI 10 through an irqfd. Beside it, a write to an unclaimed port
 * shows what the same ring costs when it has to exit to evmm. */
#define BELL_PORT 0x6f0
#define BELL_MMIO 0xd0000000ull
#define BELL_GSI 10
#define BELL_VECTOR (RT_VEC_USER + 1)
#define EXITING_PORT 0x6f8
#define RINGS 20
static volatile uint32_t bells;

static void on_bell(struct rt_frame *f) { (void)f; bells++; }
static bool bell_answered(void *before) { return bells != *(uint32_t *)before; }

static bool step_doorbell(char *out, size_t cap)
{
    /* Interrupts stay off while a ring is timed, so the answer cannot land inside the measurement;
     * rt_wait halts with them on and returns with them off again. */
    bool irqs_were_on = read_rflags() & (1u << 9);
    irq_disable();
    rt_set_irq_handler(BELL_VECTOR, on_bell);
    rt_ioapic_route(BELL_GSI, BELL_VECTOR, rt_lapic_id());
    bells = 0;
    uint64_t ring_best = ~0ull, exit_best = ~0ull;
    bool all_answered = true;
    for (uint32_t i = 0; i < 2 * RINGS; i++) {
        uint32_t before = bells;
        uint64_t t0 = rdtsc();
        if (i < RINGS)
            outl(BELL_PORT, i);
        else
            mmio_write32(BELL_MMIO, i);
        uint64_t t1 = rdtsc();
        all_answered &= rt_wait(bell_answered, &before, 1000000);
        if (t1 - t0 < ring_best)
            ring_best = t1 - t0;
    }
    for (uint32_t i = 0; i < RINGS; i++) {
        uint64_t t0 = rdtsc();
        outl(EXITING_PORT, i);
        uint64_t t1 = rdtsc();
        if (t1 - t0 < exit_best)
            exit_best = t1 - t0;
    }
    if (irqs_were_on)
        irq_enable();
    uint32_t device_count = mmio_read32(BELL_MMIO); /* a read is never swallowed: it reaches the device */
    uint64_t khz = rt_tsc_khz();
    uint64_t ring_ns = khz ? ring_best * 1000000 / khz : 0, exit_ns = khz ? exit_best * 1000000 / khz : 0;
    rt_snprintf(out, cap,
                "doorbell: %u PIO + %u MMIO rings caught by ioeventfd, %u answered by irqfd on GSI %u (device "
                "counted %u); a ring costs %lu.%02lu us, a write that exits to evmm %lu.%02lu us (fastest of %u)",
                RINGS, RINGS, bells, BELL_GSI, device_count, ring_ns / 1000, ring_ns % 1000 / 10, exit_ns / 1000,
                exit_ns % 1000 / 10, RINGS);
    return all_answered && bells == 2 * RINGS && device_count == 2 * RINGS;
}

/* Suspend and wake: vCPU 0 sets an RTC alarm for the next second (minutes and hours "don't care"),
 * suspends itself through evmm's paravirtual call with IF=0, and is woken by the alarm's interrupt,
 * which it then still takes. */
#define RTC_VECTOR (RT_VEC_USER + 2)
#define RTC_B_AIE 0x20
#define RTC_C_AF 0x20
static volatile uint32_t rtc_irqs, rtc_quiet_irqs;
static volatile uint8_t rtc_c;

/* An irqfd level line may deliver one interrupt whose source is already quiet (its register C reads
 * without IRQF; event/eventfd_interrupt_line.h): counted apart, as testprog's rtcpie does. */
static void on_rtc(struct rt_frame *f)
{
    (void)f;
    uint8_t c = rt_cmos_read(0x0c); /* reading C acknowledges the interrupt */
    rtc_c |= c;
    if (c & 0x80)
        rtc_irqs++;
    else
        rtc_quiet_irqs++;
}
static bool rtc_irq_seen(void *arg) { (void)arg; return rtc_irqs != 0; }

static bool step_suspend(char *out, size_t cap)
{
    bool irqs_were_on = read_rflags() & (1u << 9);
    irq_disable();
    rt_set_irq_handler(RTC_VECTOR, on_rtc);
    rt_ioapic_route(8, RTC_VECTOR, rt_lapic_id());
    uint8_t b = rt_cmos_read(0x0b);
    rt_cmos_write(0x0b, 0x06); /* binary, 24-hour, no interrupts while the alarm is set */
    for (int spins = 0; (rt_cmos_read(0x0a) & 0x80) && spins < 10000; spins++)
        ;
    rt_cmos_write(0x01, (uint8_t)((rt_cmos_read(0x00) + 1) % 60));
    rt_cmos_write(0x03, 0xff);
    rt_cmos_write(0x05, 0xff);
    (void)rt_cmos_read(0x0c);
    rtc_irqs = 0;
    rtc_quiet_irqs = 0;
    rtc_c = 0;
    rt_cmos_write(0x0b, 0x06 | RTC_B_AIE);
    uint64_t t0 = rdtsc();
    rt_pv_suspend();
    uint64_t slept = rdtsc() - t0;
    bool delivered = rt_wait(rtc_irq_seen, NULL, 100000); /* the pending alarm comes in at once */
    rt_cmos_write(0x0b, b);
    if (irqs_were_on)
        irq_enable();
    uint64_t khz = rt_tsc_khz(), ms = khz ? slept / khz : 0;
    rt_snprintf(out, cap,
                "vCPU 0 suspended itself for %lu ms; the RTC alarm woke it, and its interrupt was still "
                "delivered (%u, register C 0x%x; %u more with the source already quiet)",
                ms, rtc_irqs, rtc_c, rtc_quiet_irqs);
    return delivered && rtc_irqs == 1 && (rtc_c & RTC_C_AF) && ms <= 2000;
}

/* virtio: the devices evmm described in the DSDT, driven by the runtime's own drivers. A device that
 * is not there is said so, not failed: `make run` gives all three. */
static bool absent(uint32_t id, const char *option, char *out, size_t cap)
{
    if (rt_virtio_find(id))
        return false;
    rt_snprintf(out, cap, "no virtio-%s device in the DSDT (evmm run %s)", rt_virtio_name(id), option);
    return true;
}

static uint32_t fnv1a(const uint8_t *p, size_t n)
{
    uint32_t h = 2166136261u;
    for (size_t i = 0; i < n; i++)
        h = (h ^ p[i]) * 16777619u;
    return h;
}

static bool step_blk(char *out, size_t cap)
{
    if (absent(RT_VIRTIO_BLK, "--disk path=FILE", out, cap))
        return true;
    static uint8_t wrote[512], got[512];
    uint64_t sectors = 0;
    char id[21];
    if (!rt_vblk_capacity(&sectors) || !rt_vblk_get_id(id)) {
        rt_snprintf(out, cap, "%s", rt_virtio_error());
        return false;
    }
    /* A pattern that differs every run, so the read cannot be an old one that happens to match. */
    uint32_t seed = (uint32_t)rdtsc();
    for (uint32_t i = 0; i < sizeof(wrote); i++)
        wrote[i] = (uint8_t)((seed >> (8 * (i & 3))) + i);
    uint64_t sector = sectors > 1 ? 1 : 0;
    if (!rt_vblk_write(sector, wrote, 1) || !rt_vblk_read(sector, got, 1)) {
        rt_snprintf(out, cap, "%s", rt_virtio_error());
        return false;
    }
    bool flushed = rt_vblk_flush();
    uint32_t a = fnv1a(wrote, sizeof(wrote)), b = fnv1a(got, sizeof(got));
    rt_snprintf(out, cap, "%lu KiB disk \"%s\": wrote sector %lu, read it back, checksum 0x%08x %s 0x%08x; %s",
                sectors / 2, id, sector, b, a == b ? "==" : "!=", a, flushed ? "flushed" : rt_virtio_error());
    return a == b && !memcmp(wrote, got, sizeof(got)) && flushed;
}

static bool step_rng(char *out, size_t cap)
{
    if (absent(RT_VIRTIO_RNG, "--rng", out, cap))
        return true;
    uint8_t b[16];
    uint32_t got = 0;
    if (!rt_vrng_read(b, sizeof(b), &got)) {
        rt_snprintf(out, cap, "%s", rt_virtio_error());
        return false;
    }
    bool all_equal = true;
    for (uint32_t i = 1; i < got; i++)
        all_equal &= b[i] == b[0];
    int len = rt_snprintf(out, cap, "%u bytes from the host's getrandom:", got);
    for (uint32_t i = 0; i < got && len < (int)cap; i++)
        len += rt_snprintf(out + len, cap - (size_t)len, " %02x", b[i]);
    if (len < (int)cap)
        rt_snprintf(out + len, cap - (size_t)len, "%s", all_equal ? " (all equal!)" : " (not all equal)");
    return got == sizeof(b) && !all_equal;
}

static bool step_console(char *out, size_t cap)
{
    if (absent(RT_VIRTIO_CONSOLE, "--console virtio", out, cap))
        return true;
    static const char line[] = "evmm demo: this line came through virtio-console\n";
    if (!rt_vcons_write(line, sizeof(line) - 1)) {
        rt_snprintf(out, cap, "%s", rt_virtio_error());
        return false;
    }
    rt_snprintf(out, cap, "wrote a %u-byte line to port 0 (hvc0)", (uint32_t)sizeof(line) - 1);
    return true;
}

static const struct tour_step tour[] = {
    {"boot", step_boot}, {"cmdline", step_cmdline}, {"memory", step_memory}, {"modules", step_modules},
    {"cpu", step_cpu},   {"smp", step_smp},         {"acpi", step_acpi},     {"fw_cfg", step_fwcfg},
    {"rtc", step_rtc},   {"tsc", step_tsc},         {"timer", step_timer},   {"event", step_doorbell},
    {"suspend", step_suspend}, {"blk", step_blk}, {"rng", step_rng}, {"console", step_console},
};

int rt_main(void)
{
    rt_printf("evmm demo: a tour of this virtual machine, measured from inside the guest\n");
    unsigned failed = 0;
    for (size_t i = 0; i < sizeof(tour) / sizeof(tour[0]); i++) {
        char line[256];
        bool ok = tour[i].run(line, sizeof(line));
        failed += !ok;
        rt_printf("  %-8s %s%s\n", tour[i].label, line, ok ? "" : "  [FAILED]");
    }
    uint64_t khz = rt_tsc_khz();
    if (khz) {
        uint64_t us = (rdtsc() - rt_boot.tsc_at_entry) * 1000 / khz;
        rt_printf("  %-8s %lu.%03lu ms of guest time from 64-bit entry to here (TSC)\n", "elapsed", us / 1000,
                  us % 1000);
    }
    rt_printf("evmm demo: %s; powering off through ACPI S5\n", failed ? "some steps FAILED" : "all steps ok");
    rt_poweroff();
}
