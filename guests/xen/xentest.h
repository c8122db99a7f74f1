/* The Xen HVM test guest: one program for both widths. It runs on the 64-bit runtime (guests/runtime) or
 * on the 32-bit one (rt32/), through the same rt/rt.h API; only the hypercall registers differ
 * (hypercall.h). Words and output lines are documented in guests/README.md. */
#ifndef XENTEST_H
#define XENTEST_H

#include "xen_abi.h" /* first: it sets the Xen interface version */

#include "hypercall.h"
#include "rt/hw.h"
#include "rt/rt.h"

#define XT_UPCALL_VECTOR 0xf3 /* the event channel upcall, global (vCPU 0) and per-vCPU (the others) */
#define XT_CHECK_VECTOR 0xe1  /* rtcheck: IPIs from the APs to the BSP */
#define XT_MAX_PORTS ((uint32_t)EVTCHN_2L_NR_CHANNELS)
#define XT_MAX_N 1000 /* the largest n= (bench arrays) */

#define XT_US 1000ull
#define XT_MS 1000000ull
/* How much earlier than its deadline a timer or timeout may be seen to end: the guest's reading of system
 * time (vcpu_time_info scaled from the TSC) and the VMM's clock need not agree to the nanosecond, and
 * Xen itself fires timers up to its timer_slop (50 us) early. */
#define XT_EARLY_SLACK_NS (1 * XT_MS)

/* Debug-exit codes (status (code << 1) | 1), for ends that cannot go through SCHEDOP_shutdown. */
enum xt_exit_code {
    XT_EXIT_NO_XEN = 0x70,   /* no Xen CPUID leaves: "xen: not found" */
    XT_EXIT_NO_HCALL = 0x71, /* a failure before the hypercall page works */
    XT_EXIT_RTCHECK = 0x72,  /* rtcheck failed */
    XT_EXIT_NO_SHUTDOWN = 0x73, /* SCHEDOP_shutdown returned where it must not */
};

/* What discovery and setup found (main.c). */
struct xt_xen {
    uint32_t base, max_leaf, msr, pages;
    uint32_t major, minor;
    int domid; /* -1 when CPUID leaf base+4 does not give it */
    bool hypercalls;  /* the hypercall page is written: hypercalls may be made */
    bool console;     /* output goes through console_io */
    uint32_t ncpus;   /* CPUs up, each with its vcpu_info registered and its upcall set */
    uint32_t vcpu_id[RT_MAX_CPUS]; /* Xen's vCPU id of each CPU index */
    const char *word; /* the word running, for FAIL lines */
};
extern struct xt_xen xen;
extern struct shared_info *const xt_shared;
extern struct vcpu_info xt_vcpu_info[RT_MAX_CPUS];

/* ---- output (main.c) ---- */
/* One console_io write per call once Xen is set up, COM1 before: callers pass whole lines. */
void xt_printf(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
/* A progress line, "-- <word>: <text>", printed before each step so a hang or crash shows where it was. */
void xt_step(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
/* "FAIL <word>: <what>", then SCHEDOP_shutdown(SHUTDOWN_crash). */
__attribute__((noreturn)) void xt_fail(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
__attribute__((noreturn)) void xt_shutdown(unsigned int reason);
uint32_t xt_arg_n(uint32_t dflt); /* the n= parameter, 1..XT_MAX_N */

/* ---- time and waiting (events.c) ---- */
uint64_t xt_now(void);      /* Xen system time (ns) from this CPU's registered vcpu_info */
uint64_t xt_tsc_khz(void);  /* from vcpu_time_info's tsc_to_system_mul and tsc_shift */
/* Waits with sti;hlt until cond(arg) holds or timeout_ns of system time pass; returns cond's last value
 * (true at once if cond is NULL and time ran out). Called and returns with IF=0; the LAPIC timer wakes
 * the CPU at least every 50 ms to look at the time. */
bool xt_wait(bool (*cond)(void *), void *arg, uint64_t timeout_ns);
static inline uint32_t xt_us_since(uint64_t t0, uint64_t t1) { return (uint32_t)((t1 - t0) / XT_US); }

/* ---- event channels (events.c) ---- */
typedef void (*xt_port_fn)(uint32_t port); /* runs in the upcall handler, IF=0, on the notified CPU */
void xt_events_init(void);                   /* installs the upcall handler */
void xt_port_claim(uint32_t port, xt_port_fn fn); /* the guest holds port: count from 0, call fn */
void xt_port_set_fn(uint32_t port, xt_port_fn fn);
void xt_port_release(uint32_t port);
uint32_t xt_port_count(uint32_t port);     /* upcalls that found port pending since the claim */
uint64_t xt_port_time(uint32_t port);      /* system time of the last such upcall (0: none yet) */
uint32_t xt_ports_held(void);              /* ports the guest holds */
bool xt_wait_count(uint32_t port, uint32_t above, uint64_t timeout_ns); /* until count > above */
/* Until both counts passed theirs: an IPI's arrival on one CPU and the answer on the other. */
bool xt_wait_counts(uint32_t port0, uint32_t above0, uint32_t port1, uint32_t above1, uint64_t timeout_ns);
void xt_mask(uint32_t port);               /* sets the mask bit (lock or) */
bool xt_pending(uint32_t port);            /* the evtchn_pending bit */
extern uint64_t xt_upcall_tsc[RT_MAX_CPUS]; /* rdtsc on entry to the last upcall on each CPU */
/* For FAIL lines after a wait for an event timed out: "port P pending M masked K; cpu C upcalls N
 * upcall_pending U sel 0x...", and the part about the CPU alone. Not reentrant. */
const char *xt_event_state(uint32_t port, uint32_t cpu);
const char *xt_cpu_state(uint32_t cpu);

/* The hypercalls, each returning Xen's result (0 or -XEN_E*). */
static inline int xt_evtchn(int cmd, void *arg) { return (int)HYPERVISOR_event_channel_op(cmd, arg); }
int xt_send(uint32_t port);
int xt_close(uint32_t port); /* and releases the port when Xen closed it */
int xt_bind_ipi(uint32_t cpu, uint32_t *port);        /* on this CPU, for CPU index cpu's vCPU */
int xt_bind_virq(uint32_t virq, uint32_t cpu, uint32_t *port);
int xt_unmask(uint32_t port);
int xt_status(uint32_t port, struct evtchn_status *st);
int xt_singleshot(uint64_t deadline_ns);              /* VCPUOP_set_singleshot_timer for this CPU */
int xt_stop_singleshot(void);

/* ---- the words ---- */
void word_console(const char *value);
void word_ipi(const char *value);
void word_loopback(const char *value);
void word_exhaust(const char *value);
void word_rebind(const char *value);
void word_poll(const char *value);
void word_backend(const char *value);
void word_bench_backend(const char *value);
void word_timer(const char *value);
void word_mask(const char *value);
void word_block(const char *value);
void word_block_lapic(const char *value);
void word_bench_ipi(const char *value);
void word_compat(const char *value);
void rtcheck(void); /* before discovery, on COM1 */

/* Shared between words: the per-CPU IPI ports (ipi, bench-ipi) and the VIRQ_TIMER port of vCPU 0
 * (timer, mask, block, rebind). 0 when not bound. */
extern uint32_t xt_ipi_port[RT_MAX_CPUS];
uint32_t xt_ipi_ports(void);  /* binds each CPU's IPI port on that CPU (cpus 0 and 1); returns the count */
extern uint32_t xt_timer_port;
uint32_t xt_timer_port_get(void); /* binds VIRQ_TIMER on vCPU 0 if needed */
void xt_timer_port_close(void);

/* Sorting for the bench percentiles (n <= XT_MAX_N: insertion sort is cheap enough). */
void xt_sort(uint64_t *v, uint32_t n);
static inline uint64_t xt_percentile(const uint64_t *sorted, uint32_t n, uint32_t pct)
{
    uint32_t i = n * pct / 100; /* n <= XT_MAX_N: no overflow */
    return sorted[i < n ? i : n - 1];
}

#endif
