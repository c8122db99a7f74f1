/* console (console_io edge cases), bench-ipi (with bench-exit and the TSC rate), and rtcheck, which
 * exercises the runtime alone, before Xen discovery. */
#include "xentest.h"

/* ---- console ---- */

/* The end of RAM below 4 GiB: the highest usable memory map entry, or for a plain ELF image (no memory
 * map) fw_cfg's RAM size, which under evmm is the top of RAM up to 3 GiB (more goes above 4 GiB). */
static uint64_t ram_end(void)
{
    uint64_t end = 0;
    for (uint32_t i = 0; i < rt_boot.n_mmap; i++) {
        const struct rt_mmap_entry *e = &rt_boot.mmap[i];
        if (e->type == 1 && e->end <= (1ull << 32) && e->end > end)
            end = e->end;
    }
    if (!end) {
        end = rt_fwcfg_ram_size();
        if (end > 0xc0000000u)
            end = 0xc0000000u;
    }
    return end;
}

static char split_buf[2 * 4096] __attribute__((aligned(4096)));

void word_console(const char *value)
{
    (void)value;
    static const char line[] = "console: split write ok\n";
    char *at = split_buf + 4096 - 10; /* 10 bytes on the first page, the rest on the second */
    memcpy(at, line, sizeof(line) - 1);
    xt_step("console_io write of %u bytes at %p, across the page boundary", (unsigned)sizeof(line) - 1, (void *)at);
    long rc = HYPERVISOR_console_io(CONSOLEIO_write, (int)sizeof(line) - 1, at);
    if (rc != 0)
        xt_fail("console_io write across a page boundary returned %ld", rc);

    extern char _end[];
    uint64_t end = ram_end();
    if (end < (uintptr_t)_end + 4096)
        xt_fail("end of RAM 0x%llx is not above the image (which ends at %p)", (unsigned long long)end, (void *)_end);
    /* The last 256 bytes of RAM hold a readable marker without a newline; Xen prints what it copied
     * before the fault (in 127-byte pieces), so some of it may appear. */
    static const char marker[] = "<<partial>>";
    char *tail = phys_ptr(end - 256);
    for (size_t i = 0; i < 256; i++)
        tail[i] = marker[i % (sizeof(marker) - 1)];
    xt_step("console_io write of 32 bytes at 0x%llx, 16 of them past the end of RAM",
            (unsigned long long)(end - 16));
    xt_step("console_io write of 0x7fffffff bytes at 0x%llx, 256 bytes before the end of RAM",
            (unsigned long long)(end - 256));
    long fault = HYPERVISOR_console_io(CONSOLEIO_write, 32, phys_ptr(end - 16));
    long huge = HYPERVISOR_console_io(CONSOLEIO_write, 0x7fffffff, phys_ptr(end - 256));
    xt_printf("\n"); /* ends any partial text */
    if (fault != -XEN_EFAULT || huge != -XEN_EFAULT)
        xt_fail("writes running off the end of RAM returned %ld and %ld, expected -EFAULT (%d)", fault, huge,
                -XEN_EFAULT);
    xt_printf("console: fault %ld ok, huge %ld ok\n", fault, huge);
}

/* ---- bench-ipi, bench-exit ---- */

static uint64_t send_cycles[XT_MAX_N], round_cycles[XT_MAX_N];
static volatile uint64_t bench_t0, bench_cpu1_delta;
static volatile int bench_reply_rc;

/* On vCPU 1: cycles from vCPU 0's rdtsc before the send to this upcall's entry, then the answer. */
static void bench_reply(uint32_t port)
{
    (void)port;
    bench_cpu1_delta = xt_upcall_tsc[1] - bench_t0;
    int rc = xt_send(xt_ipi_port[0]);
    if (rc)
        bench_reply_rc = rc;
}

void word_bench_ipi(const char *value)
{
    (void)value;
    uint32_t n = xt_arg_n(200);
    if (xen.ncpus < 2) {
        xt_printf("bench-ipi: skipped (1 cpu)\n");
    } else {
        xt_ipi_ports();
        uint32_t p0 = xt_ipi_port[0], p1 = xt_ipi_port[1];
        xt_port_set_fn(p0, NULL);
        xt_port_set_fn(p1, bench_reply);
        bench_reply_rc = 0;
        xt_step("%u sends on port %u (cpu 1), answered on port %u (cpu 0)", n, p1, p0);
        for (uint32_t i = 0; i < n; i++) {
            uint32_t c0 = xt_port_count(p0), c1 = xt_port_count(p1);
            uint64_t t0 = rdtsc();
            bench_t0 = t0;
            int rc = xt_send(p1);
            if (rc != 0)
                xt_fail("round %u: EVTCHNOP_send(%u) returned %d", i, p1, rc);
            if (!xt_wait_counts(p0, c0, p1, c1, 1000 * XT_MS))
                xt_fail("round %u: no answer within 1 s (%s)", i, xt_event_state(p0, 0));
            if (bench_reply_rc)
                xt_fail("round %u: cpu 1's EVTCHNOP_send(%u) returned %d", i, p0, bench_reply_rc);
            send_cycles[i] = bench_cpu1_delta;
            round_cycles[i] = xt_upcall_tsc[0] - t0;
        }
        xt_port_set_fn(p1, NULL);
        xt_sort(send_cycles, n);
        xt_sort(round_cycles, n);
        xt_printf("bench-ipi: %u send->handler p50 %llu p99 %llu cycles, round trip p50 %llu p99 %llu cycles\n", n,
                  (unsigned long long)xt_percentile(send_cycles, n, 50),
                  (unsigned long long)xt_percentile(send_cycles, n, 99),
                  (unsigned long long)xt_percentile(round_cycles, n, 50),
                  (unsigned long long)xt_percentile(round_cycles, n, 99));
    }

    /* A write to a port no device claims: evmm counts it in userspace and ignores it. */
    xt_step("%u writes to port 0x7f0", n);
    for (uint32_t i = 0; i < n; i++) {
        uint64_t t0 = rdtsc();
        outb(0x7f0, 0);
        round_cycles[i] = rdtsc() - t0;
    }
    xt_sort(round_cycles, n);
    xt_printf("bench-exit: %u pio round trip p50 %llu p99 %llu cycles\n", n,
              (unsigned long long)xt_percentile(round_cycles, n, 50),
              (unsigned long long)xt_percentile(round_cycles, n, 99));
    xt_printf("bench: tsc %llu kHz\n", (unsigned long long)xt_tsc_khz());
}

/* ---- rtcheck ---- */

static volatile uint32_t check_ipis;

static void check_ipi(struct rt_frame *f)
{
    (void)f;
    __atomic_fetch_add(&check_ipis, 1, __ATOMIC_RELEASE);
}

static void check_ap(void *arg)
{
    uint32_t *index = arg;
    *index = rt_cpu_index();
    rt_lapic_send_ipi(rt_cpu_apic_id(0), XT_CHECK_VECTOR);
}

static bool ipis_in(void *arg) { return __atomic_load_n(&check_ipis, __ATOMIC_ACQUIRE) >= *(uint32_t *)arg; }

/* The runtime alone, on COM1: AP start-up, the mailbox, a fixed IPI to the BSP from each AP, and a LAPIC
 * timer wait. Lets a host test check the 32-bit runtime without Xen. */
void rtcheck(void)
{
    uint32_t want = rt_fwcfg_nb_cpus() < RT_MAX_CPUS ? rt_fwcfg_nb_cpus() : RT_MAX_CPUS;
    rt_set_irq_handler(XT_CHECK_VECTOR, check_ipi);
    uint32_t up = rt_smp_start(NULL);
    if (up != want) {
        rt_printf("rtcheck: only %u of %u cpus up\n", up, want);
        rt_exit(XT_EXIT_RTCHECK);
    }
    /* One AP at a time, each IPI taken before the next AP is woken: two IPIs of one vector that meet in
     * the IRR (the BSP runs with IF=0 between waits) are one interrupt. */
    for (uint32_t cpu = 1; cpu < up; cpu++) {
        uint32_t index = ~0u;
        if (!rt_run_on(cpu, check_ap, &index) || index != cpu) {
            rt_printf("rtcheck: cpu %u ran its work as cpu %d\n", cpu, (int)index);
            rt_exit(XT_EXIT_RTCHECK);
        }
        if (!rt_wait(ipis_in, &cpu, 1000000)) {
            rt_printf("rtcheck: cpu %u's ipi did not arrive (%u of %u)\n", cpu, check_ipis, cpu);
            rt_exit(XT_EXIT_RTCHECK);
        }
    }
    uint64_t t0 = rdtsc();
    rt_sleep_us(10000);
    uint64_t cycles = rdtsc() - t0;
    rt_printf("rtcheck: %u cpus up, %u ipis, lapic timer ok (10 ms sleep took %llu cycles)\n", up, check_ipis,
              (unsigned long long)cycles);
}

/* ---- compat ---- */

/* A 64-bit guest's 32-bit code calls the same hypercall page: every byte of a stub must mean the same
 * there, and the result must be the 32-bit one. Compared with the same calls from 64-bit code, where a
 * negative result arrives sign-extended. */
#ifdef __x86_64__
uint32_t xt_compat_hypercall(uint64_t stub, uint32_t a1, uint32_t a2);
#endif

void word_compat(const char *value)
{
    (void)value;
#ifdef __x86_64__
    extern char hypercall_page[];
    enum { UNKNOWN_HYPERCALL = 63 };
    long ver64 = HYPERVISOR_xen_version(XENVER_version, NULL);
    long bad64 = _hypercall0(UNKNOWN_HYPERCALL);
    xt_step("xen_version and hypercall %d from a 32-bit compatibility-mode code segment", UNKNOWN_HYPERCALL);
    uint32_t ver32 = xt_compat_hypercall((uintptr_t)hypercall_page + 32 * __HYPERVISOR_xen_version, XENVER_version, 0);
    uint32_t bad32 = xt_compat_hypercall((uintptr_t)hypercall_page + 32 * UNKNOWN_HYPERCALL, 0, 0);
    if (ver32 != (uint32_t)ver64 || bad32 != (uint32_t)-XEN_ENOSYS || bad64 != -XEN_ENOSYS)
        xt_fail("compat: xen_version 0x%x (64-bit 0x%lx), unknown hypercall 0x%x (64-bit %ld), expected -ENOSYS (%d)",
                ver32, ver64, bad32, bad64, -XEN_ENOSYS);
    xt_printf("compat: xen_version 0x%x and -ENOSYS from compatibility mode, %ld from 64-bit mode; ok\n", ver32, bad64);
#else
    xt_printf("compat: a 32-bit guest has no compatibility mode; skipped\n");
#endif
}
