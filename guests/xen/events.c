/* The guest's side of Xen's 2-level event channels: the upcall handler, a table of the ports the guest
 * holds, Xen system time from vcpu_time_info, and waiting for events.
 *
 * The upcall arrives on XT_UPCALL_VECTOR, as the global callback (HVM_PARAM_CALLBACK_IRQ, vCPU 0) or as
 * a per-vCPU vector (HVMOP_set_evtchn_upcall_vector, the others). Xen injects the global callback without
 * the local APIC and delivers the per-vCPU vector through it; evmm sends both as a fixed MSI through the
 * in-kernel LAPIC, where each sets an ISR bit that only an EOI clears. So the handler writes the LAPIC EOI
 * for both kinds, first thing, as Linux does for the per-vCPU vector. The handler runs with IF=0 (an
 * interrupt gate), so the EOI cannot let a second upcall nest; one that arrives meanwhile waits in the
 * IRR until the iret. Under Xen, the EOI after a global callback finds no ISR bit of its own; it is then
 * harmless only because nothing else is in service when the upcall runs, which holds for this guest
 * (every handler runs with IF=0 to its end). */
#include "xentest.h"

struct xt_port {
    volatile uint32_t count; /* upcalls that found this port pending since the claim */
    bool held;               /* bound by or for the guest */
    xt_port_fn fn;
    uint64_t last_ns; /* system time of the last such upcall, written before count */
};
static struct xt_port ports[XT_MAX_PORTS];
uint64_t xt_upcall_tsc[RT_MAX_CPUS];
static volatile uint32_t upcalls[RT_MAX_CPUS];

/* ---- time ---- */

/* (delta * mul) >> 32 without a 96-bit product. */
static uint64_t scale(uint64_t delta, uint32_t mul)
{
    return (delta >> 32) * mul + (((delta & 0xffffffffu) * mul) >> 32);
}

/* Xen's vcpu_time_info (xen.h): retry while version is odd (an update is under way) or changed; then
 * system_time + (((tsc - tsc_timestamp) << tsc_shift) * tsc_to_system_mul >> 32), shifting right for a
 * negative tsc_shift. */
uint64_t xt_now(void)
{
    const volatile struct vcpu_time_info *t = &xt_vcpu_info[rt_cpu_index()].time;
    uint32_t version;
    uint64_t stamp, system, tsc;
    uint32_t mul;
    int8_t shift;
    int tries = 0;
    do {
        version = t->version;
        __asm__ volatile("" ::: "memory"); /* x86 keeps loads in order; the compiler must too */
        stamp = t->tsc_timestamp;
        system = t->system_time;
        mul = t->tsc_to_system_mul;
        shift = t->tsc_shift;
        tsc = rdtsc();
        __asm__ volatile("" ::: "memory");
    } while (((version & 1) || version != t->version) && ++tries < 100000);
    uint64_t delta = tsc - stamp;
    if ((int64_t)delta < 0) /* a stamp ahead of this CPU's TSC: no time passed, rather than 2^64 ns */
        delta = 0;
    delta = shift >= 0 ? delta << shift : delta >> -shift;
    return system + scale(delta, mul);
}

uint64_t xt_tsc_khz(void)
{
    /* The inverse of the scaling above: Hz = (10^9 << 32) / mul, then shifted back (xen.h). */
    const volatile struct vcpu_time_info *t = &xt_vcpu_info[rt_cpu_index()].time;
    uint32_t mul = t->tsc_to_system_mul;
    int8_t shift = t->tsc_shift;
    if (!mul)
        return 0;
    uint64_t khz = (1000000ull << 32) / mul;
    return shift >= 0 ? khz >> shift : khz << -shift;
}

bool xt_wait(bool (*cond)(void *), void *arg, uint64_t timeout_ns)
{
    uint64_t deadline = xt_now() + timeout_ns;
    for (;;) {
        if (cond && cond(arg))
            return true;
        uint64_t now = xt_now();
        if (now >= deadline)
            return cond ? cond(arg) : true;
        uint64_t left_us = (deadline - now) / XT_US + 1;
        /* rt_wait halts until cond or its LAPIC one-shot; an upcall's handler ends the halt too. */
        rt_wait(cond, arg, left_us < 50000 ? (uint32_t)left_us : 50000);
    }
}

/* ---- the upcall ---- */

static unsigned lowest_bit(xen_ulong_t w)
{
    /* bsf, not __builtin_ctzl: GCC emits that as rep bsf (tzcnt), which the CPL0 emulator lacks. */
    xen_ulong_t i;
    __asm__("bsf %1, %0" : "=r"(i) : "rm"(w) : "cc");
    return (unsigned)i;
}

static void dispatch(uint32_t port)
{
    struct xt_port *p = &ports[port];
    if (p->fn)
        p->fn(port);
    p->last_ns = xt_now();
    __atomic_fetch_add(&p->count, 1, __ATOMIC_RELEASE);
}

/* The 2-level scan (Xen's xen.h comment on vcpu_info, Linux's evtchn_2l_handle_events): clear
 * evtchn_upcall_pending before looking, take evtchn_pending_sel whole, and for each word it names handle
 * the ports pending and not masked, clearing each pending bit atomically before its handler runs. Loops
 * while Xen raised evtchn_upcall_pending again meanwhile. */
static void upcall(struct rt_frame *f)
{
    (void)f;
    uint64_t tsc = rdtsc();
    uint32_t cpu = rt_cpu_index();
    xt_upcall_tsc[cpu] = tsc;
    upcalls[cpu]++;
    rt_lapic_eoi();
    struct vcpu_info *vi = &xt_vcpu_info[cpu];
    xen_ulong_t *pending = xt_shared->evtchn_pending, *mask = xt_shared->evtchn_mask;
    int rounds = 0;
    do {
        __atomic_store_n(&vi->evtchn_upcall_pending, 0, __ATOMIC_SEQ_CST);
        xen_ulong_t sel = __atomic_exchange_n(&vi->evtchn_pending_sel, 0, __ATOMIC_SEQ_CST);
        while (sel) {
            unsigned word = lowest_bit(sel);
            sel &= sel - 1;
            xen_ulong_t ready = __atomic_load_n(&pending[word], __ATOMIC_SEQ_CST) &
                                ~__atomic_load_n(&mask[word], __ATOMIC_SEQ_CST);
            while (ready) {
                unsigned bit = lowest_bit(ready);
                ready &= ready - 1;
                __atomic_fetch_and(&pending[word], ~((xen_ulong_t)1 << bit), __ATOMIC_SEQ_CST);
                dispatch(word * XEN_WORD_BITS + bit);
            }
        }
    } while (__atomic_load_n(&vi->evtchn_upcall_pending, __ATOMIC_SEQ_CST) && ++rounds < 16);
}

void xt_events_init(void) { rt_set_handler(XT_UPCALL_VECTOR, upcall); }

/* ---- the port table ---- */

static struct xt_port *port_at(uint32_t port)
{
    if (port == 0 || port >= XT_MAX_PORTS)
        xt_fail("port %u is out of range (1..%u)", port, XT_MAX_PORTS - 1);
    return &ports[port];
}

void xt_port_claim(uint32_t port, xt_port_fn fn)
{
    struct xt_port *p = port_at(port);
    p->fn = fn;
    p->last_ns = 0;
    p->held = true;
    __atomic_store_n(&p->count, 0, __ATOMIC_RELEASE);
}

void xt_port_set_fn(uint32_t port, xt_port_fn fn) { port_at(port)->fn = fn; }

void xt_port_release(uint32_t port)
{
    struct xt_port *p = port_at(port);
    p->held = false;
    p->fn = NULL;
}

uint32_t xt_port_count(uint32_t port) { return __atomic_load_n(&port_at(port)->count, __ATOMIC_ACQUIRE); }
uint64_t xt_port_time(uint32_t port) { return port_at(port)->last_ns; }

uint32_t xt_ports_held(void)
{
    uint32_t n = 0;
    for (uint32_t p = 1; p < XT_MAX_PORTS; p++)
        n += ports[p].held;
    return n;
}

struct count_above {
    uint32_t port, above;
};
static bool count_is_above(void *arg)
{
    const struct count_above *c = arg;
    return xt_port_count(c->port) > c->above;
}

bool xt_wait_count(uint32_t port, uint32_t above, uint64_t timeout_ns)
{
    struct count_above c = {port, above};
    return xt_wait(count_is_above, &c, timeout_ns);
}

static bool counts_are_above(void *arg)
{
    struct count_above *c = arg;
    return count_is_above(&c[0]) && count_is_above(&c[1]);
}

bool xt_wait_counts(uint32_t port0, uint32_t above0, uint32_t port1, uint32_t above1, uint64_t timeout_ns)
{
    struct count_above c[2] = {{port0, above0}, {port1, above1}};
    return xt_wait(counts_are_above, c, timeout_ns);
}

void xt_mask(uint32_t port)
{
    __atomic_fetch_or(&xt_shared->evtchn_mask[port / XEN_WORD_BITS], (xen_ulong_t)1 << (port % XEN_WORD_BITS),
                      __ATOMIC_SEQ_CST);
}

static bool masked(uint32_t port)
{
    return __atomic_load_n(&xt_shared->evtchn_mask[port / XEN_WORD_BITS], __ATOMIC_SEQ_CST) >>
               (port % XEN_WORD_BITS) & 1;
}

const char *xt_cpu_state(uint32_t cpu)
{
    static char buf[96];
    const struct vcpu_info *vi = &xt_vcpu_info[cpu];
    rt_snprintf(buf, sizeof(buf), "cpu %u upcalls %u upcall_pending %u sel 0x%lx", cpu, upcalls[cpu],
                vi->evtchn_upcall_pending, (unsigned long)vi->evtchn_pending_sel);
    return buf;
}

const char *xt_event_state(uint32_t port, uint32_t cpu)
{
    static char buf[160];
    if (port >= XT_MAX_PORTS)
        port = 0;
    rt_snprintf(buf, sizeof(buf), "port %u pending %d masked %d; %s", port, xt_pending(port), masked(port),
                xt_cpu_state(cpu));
    return buf;
}

bool xt_pending(uint32_t port)
{
    return __atomic_load_n(&xt_shared->evtchn_pending[port / XEN_WORD_BITS], __ATOMIC_SEQ_CST) >>
               (port % XEN_WORD_BITS) & 1;
}

/* ---- event channel and timer hypercalls ---- */

int xt_send(uint32_t port)
{
    struct evtchn_send op = {.port = port};
    return xt_evtchn(EVTCHNOP_send, &op);
}

int xt_close(uint32_t port)
{
    struct evtchn_close op = {.port = port};
    int rc = xt_evtchn(EVTCHNOP_close, &op);
    if (rc == 0 && port > 0 && port < XT_MAX_PORTS)
        xt_port_release(port);
    return rc;
}

int xt_bind_ipi(uint32_t cpu, uint32_t *port)
{
    struct evtchn_bind_ipi op = {.vcpu = xen.vcpu_id[cpu]};
    int rc = xt_evtchn(EVTCHNOP_bind_ipi, &op);
    *port = op.port;
    return rc;
}

int xt_bind_virq(uint32_t virq, uint32_t cpu, uint32_t *port)
{
    struct evtchn_bind_virq op = {.virq = virq, .vcpu = xen.vcpu_id[cpu]};
    int rc = xt_evtchn(EVTCHNOP_bind_virq, &op);
    *port = op.port;
    return rc;
}

int xt_unmask(uint32_t port)
{
    struct evtchn_unmask op = {.port = port};
    return xt_evtchn(EVTCHNOP_unmask, &op);
}

int xt_status(uint32_t port, struct evtchn_status *st)
{
    memset(st, 0, sizeof(*st));
    st->dom = DOMID_SELF;
    st->port = port;
    return xt_evtchn(EVTCHNOP_status, st);
}

int xt_singleshot(uint64_t deadline_ns)
{
    struct vcpu_set_singleshot_timer t = {.timeout_abs_ns = deadline_ns, .flags = 0};
    return (int)HYPERVISOR_vcpu_op(VCPUOP_set_singleshot_timer, xen.vcpu_id[rt_cpu_index()], &t);
}

int xt_stop_singleshot(void)
{
    return (int)HYPERVISOR_vcpu_op(VCPUOP_stop_singleshot_timer, xen.vcpu_id[rt_cpu_index()], NULL);
}

/* ---- ports shared between words ---- */

uint32_t xt_ipi_port[RT_MAX_CPUS];
uint32_t xt_timer_port;

struct bind_result {
    int rc;
    uint32_t port;
};

/* On the CPU itself: an IPI port notifies the vCPU named in bind_ipi, and Linux binds each CPU's own. */
static void bind_own_ipi(void *arg)
{
    struct bind_result *r = arg;
    r->rc = xt_bind_ipi(rt_cpu_index(), &r->port);
}

uint32_t xt_ipi_ports(void)
{
    uint32_t n = xen.ncpus < 2 ? xen.ncpus : 2;
    for (uint32_t cpu = 0; cpu < n; cpu++) {
        if (xt_ipi_port[cpu])
            continue;
        struct bind_result r = {-1, 0};
        xt_step("EVTCHNOP_bind_ipi on cpu %u for vcpu %u", cpu, xen.vcpu_id[cpu]);
        if (!rt_run_on(cpu, bind_own_ipi, &r))
            xt_fail("cpu %u did not run bind_ipi", cpu);
        if (r.rc != 0)
            xt_fail("EVTCHNOP_bind_ipi(vcpu %u) on cpu %u returned %d", xen.vcpu_id[cpu], cpu, r.rc);
        xt_port_claim(r.port, NULL);
        xt_ipi_port[cpu] = r.port;
    }
    return n;
}

uint32_t xt_timer_port_get(void)
{
    if (!xt_timer_port) {
        xt_step("EVTCHNOP_bind_virq VIRQ_TIMER vcpu %u", xen.vcpu_id[0]);
        uint32_t port;
        int rc = xt_bind_virq(VIRQ_TIMER, 0, &port);
        if (rc != 0)
            xt_fail("EVTCHNOP_bind_virq(VIRQ_TIMER, vcpu %u) returned %d", xen.vcpu_id[0], rc);
        xt_port_claim(port, NULL);
        xt_timer_port = port;
    }
    return xt_timer_port;
}

void xt_timer_port_close(void)
{
    if (!xt_timer_port)
        return;
    xt_step("EVTCHNOP_close %u (VIRQ_TIMER)", xt_timer_port);
    int rc = xt_close(xt_timer_port);
    if (rc != 0)
        xt_fail("EVTCHNOP_close(%u) of the VIRQ_TIMER port returned %d", xt_timer_port, rc);
    xt_timer_port = 0;
}

void xt_sort(uint64_t *v, uint32_t n)
{
    for (uint32_t i = 1; i < n; i++) {
        uint64_t x = v[i];
        uint32_t j = i;
        for (; j > 0 && v[j - 1] > x; j--)
            v[j] = v[j - 1];
        v[j] = x;
    }
}
