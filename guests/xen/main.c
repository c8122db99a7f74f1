/* The Xen HVM test guest's main line: find Xen through CPUID, install the hypercall page, map shared_info,
 * register a vcpu_info per vCPU and set the event channel upcall (the setup Xen's HVM guest protocol asks
 * for, in the order Linux's HVM guest does it), then run the command-line words. Output goes to COM1 until
 * the hypercall page works, through console_io after that. */
#include "xentest.h"

struct xt_xen xen = {.domid = -1, .word = "hello"};

/* XENMAPSPACE_shared_info puts Xen's shared_info over this page; each vcpu_info lies inside one page. */
static union {
    struct shared_info si;
    uint8_t page[4096];
} shared_page __attribute__((aligned(4096)));
struct shared_info *const xt_shared = &shared_page.si;
struct vcpu_info xt_vcpu_info[RT_MAX_CPUS] __attribute__((aligned(4096)));
_Static_assert(sizeof(xt_vcpu_info) <= 4096, "all vcpu_info structs share one page");

extern char hypercall_page_end[];

/* ---- output ---- */

#define XT_LINE_MAX 256

static void emit(const char *buf, size_t len)
{
    if (xen.console)
        HYPERVISOR_console_io(CONSOLEIO_write, (int)len, buf);
    else
        rt_serial_write(buf, len);
}

/* prefix, then fmt, then suffix; a line cut short still ends in a newline. */
static void vprint(const char *prefix, const char *fmt, va_list ap, const char *suffix)
{
    char buf[XT_LINE_MAX];
    size_t n = (size_t)rt_snprintf(buf, sizeof(buf), "%s", prefix);
    if (n < sizeof(buf))
        n += (size_t)rt_vsnprintf(buf + n, sizeof(buf) - n, fmt, ap);
    if (n < sizeof(buf))
        n += (size_t)rt_snprintf(buf + n, sizeof(buf) - n, "%s", suffix);
    if (n >= sizeof(buf)) {
        n = sizeof(buf) - 1;
        buf[n - 1] = '\n';
    }
    emit(buf, n);
}

void xt_printf(const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    vprint("", fmt, ap, "");
    va_end(ap);
}

/* "<tag> <word>: <text>\n" */
static void word_line(const char *tag, const char *fmt, va_list ap)
{
    char prefix[40];
    rt_snprintf(prefix, sizeof(prefix), "%s %s: ", tag, xen.word);
    vprint(prefix, fmt, ap, "\n");
}

/* The `quiet` word (seen before anything runs) turns the progress lines off. */
static bool quiet;

void xt_step(const char *fmt, ...)
{
    if (quiet)
        return;
    va_list ap;
    va_start(ap, fmt);
    word_line("--", fmt, ap);
    va_end(ap);
}

void xt_shutdown(unsigned int reason)
{
    struct sched_shutdown s = {.reason = reason};
    long rc = HYPERVISOR_sched_op(SCHEDOP_shutdown, &s);
    xt_printf("shutdown: returned %ld\n", rc);
    if (reason != SHUTDOWN_crash) {
        s.reason = SHUTDOWN_crash;
        HYPERVISOR_sched_op(SCHEDOP_shutdown, &s);
    }
    rt_exit(XT_EXIT_NO_SHUTDOWN);
}

void xt_fail(const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    word_line("FAIL", fmt, ap);
    va_end(ap);
    if (!xen.hypercalls)
        rt_exit(XT_EXIT_NO_HCALL);
    xt_shutdown(SHUTDOWN_crash);
}

/* After the runtime's FATAL line (an unexpected exception or interrupt): a crash, as Xen would be told. */
static void fatal_hook(void)
{
    static uint32_t entered;
    if (!xen.hypercalls || __atomic_exchange_n(&entered, 1, __ATOMIC_SEQ_CST))
        return; /* the runtime's debug-exit follows */
    struct sched_shutdown s = {.reason = SHUTDOWN_crash};
    HYPERVISOR_sched_op(SCHEDOP_shutdown, &s);
}

uint32_t xt_arg_n(uint32_t dflt)
{
    const char *v = rt_arg("n");
    uint64_t n = dflt;
    if (v && (!rt_parse_u64(v, &n) || n < 1 || n > XT_MAX_N))
        xt_fail("bad n=%s (1..%u)", v, XT_MAX_N);
    return (uint32_t)n;
}

/* ---- discovery and setup (the implicit hello) ---- */

/* Xen's CPUID leaves may sit at any 0x100 step from 0x40000000 (another hypervisor's can come first, as
 * for Viridian); the base is the first with the signature and at least leaves base+1 and base+2. */
static bool discover(void)
{
    for (uint32_t base = 0x40000000; base < 0x40010000; base += 0x100) {
        struct cpuid_regs r = cpuid(base, 0);
        if (r.ebx == XEN_CPUID_SIGNATURE_EBX && r.ecx == XEN_CPUID_SIGNATURE_ECX &&
            r.edx == XEN_CPUID_SIGNATURE_EDX && r.eax >= base + 2) {
            xen.base = base;
            xen.max_leaf = r.eax;
            return true;
        }
    }
    return false;
}

/* Leaf base+4 (Xen's "leaf 5", HVM features): the vCPU id when XEN_HVM_CPUID_VCPU_ID_PRESENT, else
 * the APIC ID, which is the vCPU id under evmm. Read on the CPU it is about. */
static uint32_t own_vcpu_id(void)
{
    if (xen.max_leaf >= xen.base + 4) {
        struct cpuid_regs r = cpuid(xen.base + 4, 0);
        if (r.eax & XEN_HVM_CPUID_VCPU_ID_PRESENT)
            return r.ebx;
    }
    return rt_lapic_id();
}

static const uint32_t hypercalls_used[] = {
    __HYPERVISOR_memory_op,   __HYPERVISOR_set_timer_op, __HYPERVISOR_xen_version,      __HYPERVISOR_console_io,
    __HYPERVISOR_vcpu_op,     __HYPERVISOR_sched_op,     __HYPERVISOR_event_channel_op, __HYPERVISOR_hvm_op,
};

static void install_hypercall_page(void)
{
    struct cpuid_regs r = cpuid(xen.base + 2, 0);
    xen.pages = r.eax;
    xen.msr = r.ebx;
    uint32_t room = (uint32_t)((hypercall_page_end - hypercall_page) / 4096);
    if (xen.pages == 0 || xen.pages > room)
        xt_fail("CPUID 0x%x asks for %u hypercall pages; this guest has room for 1 to %u", xen.base + 2, xen.pages,
                room);
    /* Page i goes to the MSR as its address with i in the low 12 bits. */
    for (uint32_t i = 0; i < xen.pages; i++) {
        uint64_t v = ((uintptr_t)hypercall_page + 4096 * i) | i;
        xt_step("wrmsr 0x%x <- 0x%llx (hypercall page %u of %u)", xen.msr, (unsigned long long)v, i, xen.pages);
        wrmsr(xen.msr, v);
    }
    for (size_t i = 0; i < sizeof(hypercalls_used) / sizeof(hypercalls_used[0]); i++) {
        const uint8_t *stub = (const uint8_t *)hypercall_page + 32 * hypercalls_used[i];
        if (stub[0] == 0x0f && stub[1] == 0x0b)
            xt_fail("hypercall page entry %u at %p still holds the ud2 filler: the VMM did not write the page",
                    hypercalls_used[i], (const void *)stub);
    }
    xen.hypercalls = true;
}

static int register_vcpu_info(uint32_t cpu)
{
    uintptr_t gpa = (uintptr_t)&xt_vcpu_info[cpu];
    struct vcpu_register_vcpu_info info = {.mfn = gpa >> 12, .offset = (uint32_t)(gpa & 0xfff)};
    return (int)HYPERVISOR_vcpu_op(VCPUOP_register_vcpu_info, xen.vcpu_id[cpu], &info);
}

struct ap_result {
    int info, vector;
};
static struct ap_result ap_results[RT_MAX_CPUS];

/* On each AP, for itself: Xen wants VCPUOP_register_vcpu_info from the vCPU it names (or an offline one),
 * and a per-vCPU upcall vector is set like Linux sets it, from that vCPU. */
static void ap_setup(void *arg)
{
    (void)arg;
    uint32_t cpu = rt_cpu_index();
    xen.vcpu_id[cpu] = own_vcpu_id();
    ap_results[cpu].info = register_vcpu_info(cpu);
    struct xen_hvm_evtchn_upcall_vector uv = {.vcpu = xen.vcpu_id[cpu], .vector = XT_UPCALL_VECTOR};
    ap_results[cpu].vector = (int)HYPERVISOR_hvm_op(HVMOP_set_evtchn_upcall_vector, &uv);
}

static void setup(void)
{
    xt_step("CPUID 0x%x: XenVMMXenVMM, leaves up to 0x%x", xen.base, xen.max_leaf);
    install_hypercall_page();
    xt_step("hypercall page at %p; output goes through console_io from here on", (void *)hypercall_page);
    xen.console = true;
    xt_step("XENVER_version");

    long version = HYPERVISOR_xen_version(XENVER_version, NULL);
    uint32_t cpuid_version = cpuid(xen.base + 1, 0).eax;
    if (version < 0 || (uint32_t)version != cpuid_version)
        xt_fail("XENVER_version returned 0x%lx, CPUID 0x%x says 0x%x", version, xen.base + 1, cpuid_version);
    xen.major = (uint32_t)version >> 16;
    xen.minor = (uint32_t)version & 0xffff;
    xt_step("XENVER_extraversion");
    char extra[XEN_EXTRAVERSION_LEN + 1];
    memset(extra, 0, sizeof(extra));
    long rc = HYPERVISOR_xen_version(XENVER_extraversion, extra);
    if (rc != 0)
        xt_fail("XENVER_extraversion returned %ld", rc);
    char domid[12] = "none";
    if (xen.max_leaf >= xen.base + 4) {
        struct cpuid_regs r = cpuid(xen.base + 4, 0);
        xt_step("CPUID 0x%x: flags 0x%x vcpu 0x%x domid 0x%x", xen.base + 4, r.eax, r.ebx, r.ecx);
        if (r.eax & XEN_HVM_CPUID_DOMID_PRESENT) {
            xen.domid = (int)r.ecx;
            rt_snprintf(domid, sizeof(domid), "%d", xen.domid);
        }
    }
    xt_printf("xen: XenVMMXenVMM %u.%u%s leaf 0x%x msr 0x%x pages %u domid %s width %u boot %s\n", xen.major,
              xen.minor, extra, xen.base, xen.msr, xen.pages, domid, (unsigned)sizeof(void *) * 8,
              rt_boot.protocol_name);

    xt_step("XENMEM_add_to_physmap shared_info at gpfn 0x%lx", (unsigned long)((uintptr_t)xt_shared >> 12));
    struct xen_add_to_physmap xatp = {
        .domid = DOMID_SELF, .space = XENMAPSPACE_shared_info, .idx = 0, .gpfn = (uintptr_t)xt_shared >> 12};
    rc = HYPERVISOR_memory_op(XENMEM_add_to_physmap, &xatp);
    if (rc != 0)
        xt_fail("XENMEM_add_to_physmap(shared_info, gpfn 0x%lx) returned %ld", (unsigned long)xatp.gpfn, rc);

    xt_events_init();
    xen.vcpu_id[0] = own_vcpu_id();
    xt_step("VCPUOP_register_vcpu_info vcpu %u at %p", xen.vcpu_id[0], (void *)&xt_vcpu_info[0]);
    if ((rc = register_vcpu_info(0)) != 0)
        xt_fail("VCPUOP_register_vcpu_info for vcpu %u returned %ld", xen.vcpu_id[0], rc);
    uint64_t via = ((uint64_t)HVM_PARAM_CALLBACK_TYPE_VECTOR << 56) | XT_UPCALL_VECTOR;
    xt_step("HVMOP_set_param HVM_PARAM_CALLBACK_IRQ 0x%llx", (unsigned long long)via);
    struct xen_hvm_param param = {.domid = DOMID_SELF, .index = HVM_PARAM_CALLBACK_IRQ, .value = via};
    if ((rc = HYPERVISOR_hvm_op(HVMOP_set_param, &param)) != 0)
        xt_fail("HVMOP_set_param(HVM_PARAM_CALLBACK_IRQ, 0x%llx) returned %ld", (unsigned long long)via, rc);
    const struct vcpu_time_info *t = &xt_vcpu_info[0].time;
    if (!t->tsc_to_system_mul)
        xt_fail("vcpu_info of vcpu %u has no time (version %u, tsc_to_system_mul 0)", xen.vcpu_id[0], t->version);
    xt_step("system time %llu us, tsc %llu kHz", (unsigned long long)(xt_now() / XT_US),
            (unsigned long long)xt_tsc_khz());

    uint32_t want = rt_fwcfg_nb_cpus();
    if (want > RT_MAX_CPUS)
        want = RT_MAX_CPUS;
    xt_step("starting %u cpus (fw_cfg)", want);
    uint32_t up = rt_smp_start(NULL);
    if (up != want)
        xt_fail("only %u of %u cpus up", up, want);
    for (uint32_t cpu = 1; cpu < up; cpu++) {
        xt_step("cpu %u: VCPUOP_register_vcpu_info, HVMOP_set_evtchn_upcall_vector 0x%x", cpu, XT_UPCALL_VECTOR);
        if (!rt_run_on(cpu, ap_setup, NULL))
            xt_fail("cpu %u did not run its setup", cpu);
        if (ap_results[cpu].info != 0 || ap_results[cpu].vector != 0)
            xt_fail("cpu %u (vcpu %u): VCPUOP_register_vcpu_info returned %d, HVMOP_set_evtchn_upcall_vector %d",
                    cpu, xen.vcpu_id[cpu], ap_results[cpu].info, ap_results[cpu].vector);
        if (!xt_vcpu_info[cpu].time.tsc_to_system_mul)
            xt_fail("vcpu_info of vcpu %u has no time", xen.vcpu_id[cpu]);
    }
    xen.ncpus = up;
    /* Xen marks every event pending when a vcpu_info is registered, so each CPU should have taken an
     * upcall by now; a 1 ms window with interrupts open lets vCPU 0 take its own. Not checked (nothing
     * depends on those spurious upcalls), only shown, because a VMM that injects the upcall only on a
     * 0 -> 1 edge of evtchn_upcall_pending and lost this one delivers no upcall ever after. */
    xt_wait(NULL, NULL, XT_MS);
    for (uint32_t cpu = 0; cpu < up; cpu++)
        xt_step("%s", xt_cpu_state(cpu));
    xt_printf("xen: shared_info 0x%lx vcpu_info registered on %u cpus, upcall vector 0x%x\n",
              (unsigned long)(uintptr_t)xt_shared, up, XT_UPCALL_VECTOR);
}

/* ---- words ---- */

static void word_hello(const char *value)
{
    (void)value; /* the setup before the first word printed hello's lines */
}

/* An unexpected exception after setup: the runtime's FATAL line, then fatal_hook's crash. */
static void word_fatal(const char *value)
{
    (void)value;
    xt_step("ud2");
    __asm__ volatile("ud2");
}

static void word_shutdown(const char *value)
{
    static const struct {
        const char *name;
        unsigned int reason;
    } reasons[] = {
        {"poweroff", SHUTDOWN_poweroff}, {"reboot", SHUTDOWN_reboot},     {"suspend", SHUTDOWN_suspend},
        {"crash", SHUTDOWN_crash},       {"watchdog", SHUTDOWN_watchdog},
    };
    for (size_t i = 0; i < sizeof(reasons) / sizeof(reasons[0]); i++) {
        if (!strcmp(value, reasons[i].name)) {
            xt_step("SCHEDOP_shutdown %s (%u)", value, reasons[i].reason);
            xt_shutdown(reasons[i].reason);
        }
    }
    xt_fail("unknown reason '%s'", value);
}

static const struct word {
    const char *name;
    void (*fn)(const char *value);
    bool has_value; /* name=<value> */
} words[] = {
    {"hello", word_hello, false},       {"console", word_console, false},   {"ipi", word_ipi, false},
    {"loopback", word_loopback, false}, {"timer", word_timer, false},       {"mask", word_mask, false},
    {"exhaust", word_exhaust, false},   {"rebind", word_rebind, false},     {"poll", word_poll, false},
    {"block", word_block, false},       {"block-lapic", word_block_lapic, false},       {"bench-ipi", word_bench_ipi, false}, {"backend", word_backend, true},
    {"bench-backend", word_bench_backend, true}, {"shutdown", word_shutdown, true}, {"fatal", word_fatal, false},
    {"compat", word_compat, false},
};

static const struct rt_arg default_words[] = {
    {"hello", NULL}, {"console", NULL}, {"ipi", NULL},     {"loopback", NULL}, {"timer", NULL},
    {"mask", NULL},  {"exhaust", NULL}, {"rebind", NULL}, {"poll", NULL},     {"shutdown", "poweroff"},
};

static bool has_char(const char *s, char c) { return s && memchr(s, c, strlen(s)); }

/* Parameters and the words run before discovery are not actions here; neither is a file name. */
static bool is_action(const struct rt_arg *a)
{
    if (!strcmp(a->key, "n") || !strcmp(a->key, "rtcheck") || !strcmp(a->key, "rtcheck-ud") || !strcmp(a->key, "quiet"))
        return false;
    return !(has_char(a->key, '/') || has_char(a->key, '.') || has_char(a->value, '/') || has_char(a->value, '.'));
}

static void run_word(const struct rt_arg *a)
{
    for (size_t i = 0; i < sizeof(words) / sizeof(words[0]); i++) {
        const struct word *w = &words[i];
        if (strcmp(a->key, w->name))
            continue;
        xen.word = w->name;
        if (w->has_value && (!a->value || !*a->value))
            xt_fail("needs a value: %s=...", w->name);
        if (!w->has_value && a->value)
            xt_fail("takes no value");
        xt_step("start");
        w->fn(a->value);
        return;
    }
    xen.word = "word";
    if (a->value)
        xt_fail("unknown '%s=%s'", a->key, a->value);
    xt_fail("unknown '%s'", a->key);
}

int rt_main(void)
{
    rt_on_fatal(fatal_hook);
    for (uint32_t i = 0; i < rt_boot.n_args; i++) {
        const char *key = rt_boot.args[i].key;
        if (!strcmp(key, "quiet")) {
            quiet = true;
        } else if (!strcmp(key, "rtcheck")) {
            xen.word = "rtcheck";
            rtcheck();
        } else if (!strcmp(key, "rtcheck-ud")) {
            rt_printf("rtcheck-ud: ud2\n");
            __asm__ volatile("ud2");
        }
    }
    xen.word = "hello";
    if (!discover()) {
        rt_printf("xen: not found\n");
        rt_exit(XT_EXIT_NO_XEN);
    }
    setup();

    uint32_t actions = 0;
    for (uint32_t i = 0; i < rt_boot.n_args; i++) {
        if (is_action(&rt_boot.args[i])) {
            run_word(&rt_boot.args[i]);
            actions++;
        }
    }
    if (!actions) {
        xen.word = "hello";
        xt_step("no words on the command line: the default list");
        for (size_t i = 0; i < sizeof(default_words) / sizeof(default_words[0]); i++)
            run_word(&default_words[i]);
    }
    xen.word = "end";
    xt_step("SCHEDOP_shutdown poweroff");
    xt_shutdown(SHUTDOWN_poweroff);
}
