/* doorbell: the guest half of the event-plane round trip (tests/doorbell_test.cpp, bench/doorbell_bench.cpp).
 *
 * doorbell=<pio|mmio> [n=N] [at=ADDR] [gsi=G]: routes IOAPIC pin G (default DOORBELL_GSI, edge) to
 * DOORBELL_VECTOR, then N times (default 200, at most 2000): with IF=0, ring the doorbell (PIO: a 4-byte
 * outl to port ADDR, default DOORBELL_PORT; MMIO: a 4-byte store to ADDR, default DOORBELL_MMIO in the
 * 32-bit MMIO hole, below 4 GiB) and sleep with sti;hlt until the interrupt handler has
 * counted one more interrupt. The defaults are evmm's platform doorbell (src/memory/layout.h); at= and gsi=
 * let an embedding VMM serve its own doorbell elsewhere. The host is expected to answer each ring with one edge on the GSI. rdtsc
 * brackets the ring instruction (how long the vCPU is away from guest code per notification) and the
 * whole round trip. Prints
 *   doorbell: <mode> <n> round trips, ring p50 <c> p99 <c> cycles, round trip p50 <c> p99 <c> cycles
 *   doorbell: tsc <kHz> kHz, <k> interrupts
 * The ring writes the iteration number (1-based), so a host may datamatch or check it. There is no guest
 * timeout: a host that never answers leaves the guest halted; the host side bounds the run. */
#include "testprog.h"

#define DOORBELL_PORT 0x6f0
#define DOORBELL_MMIO 0xd0000000ull
#define DOORBELL_GSI 10
#define DOORBELL_VECTOR (RT_VEC_USER + 0x10)
#define DOORBELL_MAX 2000
#define DOORBELL_DEFAULT 200

static volatile uint32_t bell_irqs;
static uint64_t ring_cycles[DOORBELL_MAX], trip_cycles[DOORBELL_MAX];

static void bell_irq(struct rt_frame *f)
{
    (void)f;
    bell_irqs++; /* the runtime EOIs after an irq handler */
}


/* Heapsort: O(n log n) matters when every instruction is emulated (an insertion sort of 2000 would not). */
static void sift(uint64_t *a, size_t root, size_t n)
{
    for (;;) {
        size_t c = 2 * root + 1;
        if (c >= n)
            return;
        if (c + 1 < n && a[c + 1] > a[c])
            c++;
        if (a[root] >= a[c])
            return;
        uint64_t t = a[root];
        a[root] = a[c];
        a[c] = t;
        root = c;
    }
}
static void sort_u64(uint64_t *a, size_t n)
{
    for (size_t i = n / 2; i-- > 0;)
        sift(a, i, n);
    for (size_t end = n; end-- > 1;) {
        uint64_t t = a[0];
        a[0] = a[end];
        a[end] = t;
        sift(a, 0, end);
    }
}
static uint64_t pct(const uint64_t *sorted, size_t n, unsigned p)
{
    size_t i = (n * p) / 100;
    return sorted[i < n ? i : n - 1];
}

struct bell {
    bool mmio;
    uint64_t n, at, gsi;
};

/* doorbell=/ring3= <pio|mmio>, n=, at=, gsi=: see the header comment. */
static struct bell parse_bell(const char *word)
{
    const char *mode = tp_value;
    struct bell b = {.n = DOORBELL_DEFAULT, .gsi = DOORBELL_GSI};
    if (mode && !strcmp(mode, "pio"))
        b.mmio = false;
    else if (mode && !strcmp(mode, "mmio"))
        b.mmio = true;
    else
        tp_fail(RT_EXIT_BAD_CMDLINE, "%s: bad mode '%s' (pio or mmio)", word, mode ? mode : "");
    const char *ns = rt_arg("n");
    if (ns && (!rt_parse_u64(ns, &b.n) || b.n == 0 || b.n > DOORBELL_MAX))
        tp_fail(RT_EXIT_BAD_CMDLINE, "%s: bad n '%s' (1..%u)", word, ns, DOORBELL_MAX);
    b.at = b.mmio ? DOORBELL_MMIO : DOORBELL_PORT;
    const char *as = rt_arg("at"), *gs = rt_arg("gsi");
    if (as && (!rt_parse_u64(as, &b.at) || b.at > (b.mmio ? 0xfffffffcull : 0xfffcull)))
        tp_fail(RT_EXIT_BAD_CMDLINE, "%s: bad at '%s'", word, as);
    if (gs && (!rt_parse_u64(gs, &b.gsi) || b.gsi > 23))
        tp_fail(RT_EXIT_BAD_CMDLINE, "%s: bad gsi '%s' (0..23)", word, gs);
    return b;
}

/* The ring instruction: a 4-byte outl or store of v. Inlined, so that CPL3 code may use it. */
struct ringer {
    bool mmio;
    uint16_t port;
    volatile uint32_t *bell;
};
static inline __attribute__((always_inline)) struct ringer ringer_for(const struct bell *b)
{
    return (struct ringer){.mmio = b->mmio, .port = (uint16_t)b->at, .bell = phys_ptr(b->at)};
}
static inline __attribute__((always_inline)) void ring(const struct ringer *r, uint32_t v)
{
    if (r->mmio)
        *r->bell = v;
    else
        outl(r->port, v);
}

void action_doorbell(void)
{
    struct bell b = parse_bell("doorbell");
    uint64_t n = b.n;

    uint64_t khz = rt_tsc_khz();
    bool irqs_were_on = read_rflags() & (1u << 9);
    irq_disable();
    rt_set_irq_handler(DOORBELL_VECTOR, bell_irq);
    rt_ioapic_route((uint32_t)b.gsi, DOORBELL_VECTOR, rt_lapic_id());
    struct ringer r = ringer_for(&b);

    for (uint32_t i = 0; i < n; i++) {
        uint32_t before = bell_irqs;
        uint64_t t0 = rdtsc();
        ring(&r, i + 1);
        uint64_t t1 = rdtsc();
        while (bell_irqs == before) {
            irq_enable_and_halt();
            irq_disable();
        }
        uint64_t t2 = rdtsc();
        ring_cycles[i] = t1 - t0;
        trip_cycles[i] = t2 - t0;
    }
    if (irqs_were_on)
        irq_enable();

    sort_u64(ring_cycles, n);
    sort_u64(trip_cycles, n);
    rt_printf("doorbell: %s %lu round trips, ring p50 %lu p99 %lu cycles, round trip p50 %lu p99 %lu cycles\n",
              b.mmio ? "mmio" : "pio", n, pct(ring_cycles, n, 50), pct(ring_cycles, n, 99), pct(trip_cycles, n, 50),
              pct(trip_cycles, n, 99));
    rt_printf("doorbell: tsc %lu kHz, %u interrupts\n", khz, bell_irqs);
}

/* ring3: the ring cost without instruction emulation. The loop runs at CPL3, where this host runs guest
 * code natively (rt_run_user), with IF=0 and no answer awaited: only the ring instruction is timed. */
struct ring3 {
    struct ringer r;
    uint32_t n;
};

static void ring3_loop(void *p) /* CPL3: no runtime calls, no faults */
{
    const struct ring3 *r = p;
    for (uint32_t i = 0; i < r->n; i++) {
        uint64_t t0 = rdtsc();
        ring(&r->r, i + 1);
        ring_cycles[i] = rdtsc() - t0;
    }
}

void action_ring3(void)
{
    struct bell b = parse_bell("ring3");
    uint64_t khz = rt_tsc_khz();
    struct ring3 r = {.r = ringer_for(&b), .n = (uint32_t)b.n};
    rt_run_user(ring3_loop, &r);
    sort_u64(ring_cycles, b.n);
    rt_printf("ring3: %s %lu rings, p50 %lu p99 %lu cycles, tsc %lu kHz\n", b.mmio ? "mmio" : "pio", b.n,
              pct(ring_cycles, b.n, 50), pct(ring_cycles, b.n, 99), khz);
}
