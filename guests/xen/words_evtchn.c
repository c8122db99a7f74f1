/* Words about event channel operations and their Xen 4.17 results (common/event_channel.c and
 * common/sched/core.c): ipi, loopback, exhaust, rebind, poll, backend, bench-backend. */
#include "xentest.h"

/* ---- ipi ---- */

static volatile int ipi_reply_rc;

/* vCPU 1's handler answers on vCPU 0's port. */
static void ipi_reply(uint32_t port)
{
    (void)port;
    int rc = xt_send(xt_ipi_port[0]);
    if (rc)
        ipi_reply_rc = rc;
}

void word_ipi(const char *value)
{
    (void)value;
    uint32_t n = xt_arg_n(20);
    if (xen.ncpus < 2) {
        xt_printf("ipi: skipped (1 cpu)\n");
        return;
    }
    xt_ipi_ports();
    uint32_t p0 = xt_ipi_port[0], p1 = xt_ipi_port[1];
    xt_port_set_fn(p0, NULL);
    xt_port_set_fn(p1, ipi_reply);
    ipi_reply_rc = 0;
    xt_step("%u round trips: send on port %u (cpu 1), cpu 1 answers on port %u (cpu 0)", n, p1, p0);
    for (uint32_t i = 0; i < n; i++) {
        uint32_t c0 = xt_port_count(p0), c1 = xt_port_count(p1);
        int rc = xt_send(p1);
        if (rc != 0)
            xt_fail("round %u: EVTCHNOP_send(%u) returned %d", i, p1, rc);
        if (!xt_wait_counts(p0, c0, p1, c1, 1000 * XT_MS))
            xt_fail("round %u: no answer within 1 s (cpu 1 handled %u -> %u, cpu 0 handled %u -> %u, reply rc %d; "
                    "%s)",
                    i, c1, xt_port_count(p1), c0, xt_port_count(p0), ipi_reply_rc, xt_event_state(p0, 0));
        if (ipi_reply_rc)
            xt_fail("round %u: cpu 1's EVTCHNOP_send(%u) returned %d", i, p0, ipi_reply_rc);
    }
    xt_printf("ipi: %u round trips between cpu 0 and cpu 1 ok\n", n);
}

/* ---- loopback ---- */

static void check_interdomain(uint32_t port, uint32_t peer)
{
    struct evtchn_status st;
    int rc = xt_status(port, &st);
    if (rc != 0)
        xt_fail("EVTCHNOP_status(%u) returned %d", port, rc);
    if (st.status != EVTCHNSTAT_interdomain || st.u.interdomain.port != peer ||
        (xen.domid >= 0 && st.u.interdomain.dom != xen.domid))
        xt_fail("EVTCHNOP_status(%u): status %u dom %u port %u, expected %u (interdomain) dom %d port %u", port,
                st.status, st.u.interdomain.dom, st.u.interdomain.port, EVTCHNSTAT_interdomain, xen.domid, peer);
}

void word_loopback(const char *value)
{
    (void)value;
    xt_step("EVTCHNOP_alloc_unbound dom DOMID_SELF remote DOMID_SELF");
    struct evtchn_alloc_unbound au = {.dom = DOMID_SELF, .remote_dom = DOMID_SELF};
    int rc = xt_evtchn(EVTCHNOP_alloc_unbound, &au);
    if (rc != 0)
        xt_fail("EVTCHNOP_alloc_unbound returned %d", rc);
    uint32_t a = au.port;
    xt_port_claim(a, NULL);
    xt_step("EVTCHNOP_bind_interdomain remote DOMID_SELF port %u", a);
    struct evtchn_bind_interdomain bi = {.remote_dom = DOMID_SELF, .remote_port = a};
    if ((rc = xt_evtchn(EVTCHNOP_bind_interdomain, &bi)) != 0)
        xt_fail("EVTCHNOP_bind_interdomain(DOMID_SELF, %u) returned %d", a, rc);
    uint32_t b = bi.local_port;
    xt_port_claim(b, NULL);
    /* Xen sets the new local port pending, in case a send on the unbound end was lost. */
    if (!xt_wait_count(b, 0, 1000 * XT_MS))
        xt_fail("new port %u was not raised by EVTCHNOP_bind_interdomain (Xen sets it pending; %s)", b,
                xt_event_state(b, 0));
    uint32_t ca = xt_port_count(a), cb = xt_port_count(b);

    xt_step("EVTCHNOP_send %u -> handler of %u", b, a);
    if ((rc = xt_send(b)) != 0)
        xt_fail("EVTCHNOP_send(%u) returned %d", b, rc);
    if (!xt_wait_count(a, ca, 1000 * XT_MS))
        xt_fail("send on %u did not reach %u within 1 s (%s)", b, a, xt_event_state(a, 0));
    if (xt_port_count(b) != cb)
        xt_fail("send on %u raised %u itself", b, b);
    xt_step("EVTCHNOP_send %u -> handler of %u", a, b);
    if ((rc = xt_send(a)) != 0)
        xt_fail("EVTCHNOP_send(%u) returned %d", a, rc);
    if (!xt_wait_count(b, cb, 1000 * XT_MS))
        xt_fail("send on %u did not reach %u within 1 s (%s)", a, b, xt_event_state(b, 0));
    if (xt_port_count(a) != ca + 1)
        xt_fail("port %u was raised %u times, expected once", a, xt_port_count(a) - ca);

    xt_step("EVTCHNOP_status %u and %u", a, b);
    check_interdomain(a, b);
    check_interdomain(b, a);
    xt_step("EVTCHNOP_close %u; %u is unbound again", a, b);
    if ((rc = xt_close(a)) != 0)
        xt_fail("EVTCHNOP_close(%u) returned %d", a, rc);
    struct evtchn_status st;
    if ((rc = xt_status(b, &st)) != 0 || st.status != EVTCHNSTAT_unbound ||
        (xen.domid >= 0 && st.u.unbound.dom != xen.domid))
        xt_fail("EVTCHNOP_status(%u) after closing %u: rc %d status %u dom %u, expected unbound towards dom %d", b, a,
                rc, st.status, st.u.unbound.dom, xen.domid);
    xt_step("EVTCHNOP_close %u", b);
    if ((rc = xt_close(b)) != 0)
        xt_fail("EVTCHNOP_close(%u) returned %d", b, rc);
    xt_printf("loopback: %u <-> %u ok\n", a, b);
}

/* ---- exhaust ---- */

static uint16_t exhausted[XT_MAX_PORTS];

void word_exhaust(const char *value)
{
    (void)value;
    uint32_t held = xt_ports_held(), n = 0;
    xt_step("EVTCHNOP_alloc_unbound until it fails (%u ports held)", held);
    int rc;
    for (;;) {
        struct evtchn_alloc_unbound au = {.dom = DOMID_SELF, .remote_dom = DOMID_SELF};
        rc = xt_evtchn(EVTCHNOP_alloc_unbound, &au);
        if (rc != 0)
            break;
        if (n >= XT_MAX_PORTS - 1 || au.port == 0 || au.port >= XT_MAX_PORTS)
            xt_fail("alloc_unbound %u gave port %u (ports are 1..%u)", n + 1, au.port, XT_MAX_PORTS - 1);
        exhausted[n++] = (uint16_t)au.port;
    }
    if (rc != -XEN_ENOSPC)
        xt_fail("alloc_unbound %u returned %d, expected -ENOSPC (%d)", n + 1, rc, -XEN_ENOSPC);
    if (n != XT_MAX_PORTS - 1 - held)
        xt_fail("%u ports before -ENOSPC, expected %u (%u ports, port 0 reserved, %u held)", n,
                XT_MAX_PORTS - 1 - held, XT_MAX_PORTS, held);
    xt_step("EVTCHNOP_close of the %u ports", n);
    for (uint32_t i = 0; i < n; i++) {
        struct evtchn_close op = {.port = exhausted[i]};
        if ((rc = xt_evtchn(EVTCHNOP_close, &op)) != 0)
            xt_fail("EVTCHNOP_close(%u) returned %d", exhausted[i], rc);
    }
    xt_printf("exhaust: %u ports (%u already bound) then -ENOSPC, all closed\n", n, held);
}

/* ---- rebind ---- */

static void expect(int rc, int want, const char *what, uint32_t arg)
{
    if (rc != want)
        xt_fail("%s %u returned %d, expected %d", what, arg, rc, want);
}

void word_rebind(const char *value)
{
    (void)value;
    xt_timer_port_close(); /* VIRQ_TIMER must start unbound */
    uint32_t p, p2, dummy;
    xt_step("EVTCHNOP_bind_virq VIRQ_TIMER vcpu %u, twice", xen.vcpu_id[0]);
    expect(xt_bind_virq(VIRQ_TIMER, 0, &p), 0, "EVTCHNOP_bind_virq VIRQ_TIMER vcpu", xen.vcpu_id[0]);
    xt_port_claim(p, NULL);
    expect(xt_bind_virq(VIRQ_TIMER, 0, &dummy), -XEN_EEXIST, "a second EVTCHNOP_bind_virq VIRQ_TIMER vcpu",
           xen.vcpu_id[0]);
    xt_step("EVTCHNOP_close %u twice, then EVTCHNOP_send on it", p);
    expect(xt_close(p), 0, "EVTCHNOP_close of port", p);
    expect(xt_close(p), -XEN_EINVAL, "EVTCHNOP_close of closed port", p);
    expect(xt_send(p), -XEN_EINVAL, "EVTCHNOP_send on closed port", p);
    xt_step("EVTCHNOP_bind_virq VIRQ_TIMER again");
    expect(xt_bind_virq(VIRQ_TIMER, 0, &p2), 0, "EVTCHNOP_bind_virq VIRQ_TIMER after the close, vcpu",
           xen.vcpu_id[0]);
    xt_port_claim(p2, NULL);
    /* A vCPU id no vCPU has: 7, or the CPU count from fw_cfg when that is larger. */
    uint32_t vcpu = rt_fwcfg_nb_cpus() > 7 ? rt_fwcfg_nb_cpus() : 7;
    xt_step("EVTCHNOP_bind_ipi vcpu %u (no such vcpu)", vcpu);
    struct evtchn_bind_ipi bi = {.vcpu = vcpu};
    expect(xt_evtchn(EVTCHNOP_bind_ipi, &bi), -XEN_ENOENT, "EVTCHNOP_bind_ipi vcpu", vcpu);
    xt_step("EVTCHNOP_send 5000 (beyond the 2-level ports)");
    expect(xt_send(5000), -XEN_EINVAL, "EVTCHNOP_send on port", 5000);
    expect(xt_close(p2), 0, "EVTCHNOP_close of port", p2);
    xt_printf("rebind: eexist einval enoent ok, rebound port %u (was %u)\n", p2, p);
}

/* ---- poll ---- */

static long poll(uint32_t *ports, unsigned int nr, uint64_t timeout)
{
    struct sched_poll sp = {.nr_ports = nr, .timeout = timeout};
    set_xen_guest_handle(sp.ports, ports);
    return HYPERVISOR_sched_op(SCHEDOP_poll, &sp);
}

void word_poll(const char *value)
{
    (void)value;
    uint32_t q;
    xt_step("EVTCHNOP_bind_ipi vcpu %u, masked", xen.vcpu_id[0]);
    int rc = xt_bind_ipi(0, &q);
    if (rc != 0)
        xt_fail("EVTCHNOP_bind_ipi(vcpu %u) returned %d", xen.vcpu_id[0], rc);
    xt_port_claim(q, NULL);
    xt_mask(q);

    /* IF=0 throughout: Xen's do_poll returns at once when an upcall could be delivered. */
    xt_step("SCHEDOP_poll port %u, timeout 20000 us", q);
    uint64_t t0 = xt_now();
    long prc = poll(&q, 1, t0 + 20 * XT_MS);
    uint64_t t1 = xt_now();
    if (prc != 0)
        xt_fail("SCHEDOP_poll(port %u, 20 ms) returned %ld", q, prc);
    if (t1 + XT_EARLY_SLACK_NS < t0 + 20 * XT_MS)
        xt_fail("SCHEDOP_poll returned after %u us, before its 20000 us timeout", xt_us_since(t0, t1));

    xt_step("EVTCHNOP_send %u (masked: pending, no upcall)", q);
    if ((rc = xt_send(q)) != 0)
        xt_fail("EVTCHNOP_send(%u) returned %d", q, rc);
    if (!xt_pending(q))
        xt_fail("port %u is not pending after EVTCHNOP_send", q);
    xt_step("SCHEDOP_poll port %u, timeout 2000000 us", q);
    uint64_t t2 = xt_now();
    prc = poll(&q, 1, t2 + 2000 * XT_MS);
    uint64_t t3 = xt_now();
    if (prc != 0)
        xt_fail("SCHEDOP_poll on pending port %u returned %ld", q, prc);
    if (t3 - t2 >= 100 * XT_MS)
        xt_fail("SCHEDOP_poll on pending port %u took %u us", q, xt_us_since(t2, t3));

    /* Xen 4.17's do_poll: more than 128 ports or a port beyond the valid ones is -EINVAL; no ports at
     * all is allowed and waits for any event or the timeout. */
    uint32_t bad = 5000;
    xt_step("SCHEDOP_poll port 5000, then 129 ports, then none");
    if ((prc = poll(&bad, 1, xt_now() + 20 * XT_MS)) != -XEN_EINVAL)
        xt_fail("SCHEDOP_poll(port 5000) returned %ld, expected -EINVAL (%d)", prc, -XEN_EINVAL);
    if ((prc = poll(&q, 129, xt_now() + 20 * XT_MS)) != -XEN_EINVAL)
        xt_fail("SCHEDOP_poll(129 ports) returned %ld, expected -EINVAL (%d)", prc, -XEN_EINVAL);
    uint64_t t4 = xt_now();
    if ((prc = poll(NULL, 0, t4 + 5 * XT_MS)) != 0)
        xt_fail("SCHEDOP_poll(no ports, 5 ms) returned %ld, expected 0", prc);
    uint64_t t5 = xt_now();
    if (t5 + XT_EARLY_SLACK_NS < t4 + 5 * XT_MS)
        xt_fail("SCHEDOP_poll(no ports) returned after %u us, before its 5000 us timeout", xt_us_since(t4, t5));

    xt_step("EVTCHNOP_unmask %u: its upcall comes now", q);
    if ((rc = xt_unmask(q)) != 0)
        xt_fail("EVTCHNOP_unmask(%u) returned %d", q, rc);
    if (!xt_wait_count(q, 0, 1000 * XT_MS))
        xt_fail("no upcall for port %u within 1 s of EVTCHNOP_unmask (%s)", q, xt_event_state(q, 0));
    if ((rc = xt_close(q)) != 0)
        xt_fail("EVTCHNOP_close(%u) returned %d", q, rc);
    xt_printf("poll: timeout after %u us, pending port returned after %u us\n", xt_us_since(t0, t1),
              xt_us_since(t2, t3));
}

/* ---- backend, bench-backend ---- */

/* A port the host bound to a backend (an eventfd) before the guest ran: the guest's end of an
 * interdomain channel towards the VMM's backend domain. */
static uint32_t backend_port(const char *value, uint32_t *remote_dom)
{
    uint64_t p;
    if (!rt_parse_u64(value, &p) || p == 0 || p >= XT_MAX_PORTS)
        xt_fail("bad port '%s' (1..%u)", value, XT_MAX_PORTS - 1);
    struct evtchn_status st;
    xt_step("EVTCHNOP_status %u", (uint32_t)p);
    int rc = xt_status((uint32_t)p, &st);
    if (rc != 0)
        xt_fail("EVTCHNOP_status(%u) returned %d", (uint32_t)p, rc);
    if (st.status != EVTCHNSTAT_interdomain)
        xt_fail("port %u has status %u, expected %u (interdomain)", (uint32_t)p, st.status, EVTCHNSTAT_interdomain);
    xt_port_claim((uint32_t)p, NULL);
    xt_step("port %u: interdomain to dom %u port %u, vcpu %u", (uint32_t)p, st.u.interdomain.dom,
            st.u.interdomain.port, st.vcpu);
    *remote_dom = st.u.interdomain.dom;
    return (uint32_t)p;
}

void word_backend(const char *value)
{
    uint32_t dom, n = xt_arg_n(10), p = backend_port(value, &dom);
    xt_step("EVTCHNOP_send %u, %u times", p, n);
    for (uint32_t i = 0; i < n; i++) {
        int rc = xt_send(p);
        if (rc != 0)
            xt_fail("send %u: EVTCHNOP_send(%u) returned %d", i + 1, p, rc);
    }
    xt_printf("backend: sent %u on port %u (remote dom %u)\n", n, p, dom);
    xt_step("waiting up to 5 s for the host to raise port %u", p);
    if (!xt_wait_count(p, 0, 5000 * XT_MS))
        xt_fail("port %u not raised by the host within 5 s (%s)", p, xt_event_state(p, 0));
    xt_printf("backend: raised by the host %u times\n", xt_port_count(p));
}

void word_bench_backend(const char *value)
{
    uint32_t dom, n = xt_arg_n(10), p = backend_port(value, &dom);
    xt_step("%u rounds: EVTCHNOP_send %u, wait for the host to raise it", n, p);
    for (uint32_t i = 0; i < n; i++) {
        uint32_t before = xt_port_count(p);
        int rc = xt_send(p);
        if (rc != 0)
            xt_fail("round %u: EVTCHNOP_send(%u) returned %d", i + 1, p, rc);
        if (!xt_wait_count(p, before, 5000 * XT_MS))
            xt_fail("round %u: port %u not raised by the host within 5 s (%s)", i + 1, p, xt_event_state(p, 0));
    }
    xt_printf("bench-backend: %u round trips\n", n);
}
