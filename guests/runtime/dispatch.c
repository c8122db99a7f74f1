/* Interrupt and exception dispatch, shared by both runtimes: the stubs (isr.S, xen/rt32/isr32.S) call
 * rt_isr_dispatch with the frame, which runs the handler a program installed for the vector, and
 * reports any vector without one. Width-agnostic; the FATAL line itself is the runtime's own
 * (rt_print_fatal), as the frames differ. */
#include "internal.h"

static rt_handler handlers[256];
static bool needs_eoi[256];
static void (*fatal_hook)(void);

static const char *const exception_names[32] = {
    "#DE", "#DB", "NMI", "#BP", "#OF", "#BR", "#UD", "#NM", "#DF", "CSO", "#TS", "#NP", "#SS", "#GP", "#PF", "",
    "#MF", "#AC", "#MC", "#XM", "#VE", "#CP", "",    "",    "",    "",    "",    "",    "#HV", "#VC", "#SX", "",
};

const char *rt_vector_name(uint64_t vector) { return vector < 32 ? exception_names[vector] : "interrupt"; }

void rt_set_handler(uint8_t vector, rt_handler h)
{
    needs_eoi[vector] = false;
    handlers[vector] = h;
}

void rt_set_irq_handler(uint8_t vector, rt_handler h)
{
    needs_eoi[vector] = true;
    handlers[vector] = h;
}

void rt_on_fatal(void (*fn)(void)) { fatal_hook = fn; }

__attribute__((noreturn)) static void fatal(struct rt_frame *f)
{
    rt_print_fatal(f);
    if (fatal_hook)
        fatal_hook();
    rt_exit(RT_EXIT_FATAL);
}

void rt_isr_dispatch(struct rt_frame *f)
{
    uint8_t v = (uint8_t)f->vector;
    /* A spurious LAPIC interrupt is not in service and must not be acknowledged (SDM vol. 3 s11.9). */
    if (v == RT_VEC_SPURIOUS && !handlers[v])
        return;
    if (!handlers[v])
        fatal(f);
    handlers[v](f);
    if (needs_eoi[v])
        rt_lapic_eoi();
}
