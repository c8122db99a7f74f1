/* Actions about what the loader handed over: protocol, command line, memory map, modules; and the serial
 * port's input side. */
#include "testprog.h"

void action_hello(void)
{
    rt_printf("hello from %s on %u cpus\n", rt_boot.protocol_name, rt_fwcfg_nb_cpus());
    rt_printf("cmdline: %s\n", rt_boot.cmdline);
}

/* Runs forever, for a debugger to interrupt (tests/gdb_test.cpp). */
void action_spin(void)
{
    for (volatile uint64_t i = 0;; i++)
        ;
}

/* The highest page-aligned usable page below 4 GiB (the runtime maps only the first 4 GiB). */
static uint64_t highest_usable_page(void)
{
    uint64_t best = 0;
    for (uint32_t i = 0; i < rt_boot.n_mmap; i++) {
        const struct rt_mmap_entry *e = &rt_boot.mmap[i];
        uint64_t end = e->end < (1ull << 32) ? e->end : (1ull << 32);
        uint64_t start = (e->start + 0xfff) & ~0xfffull;
        end &= ~0xfffull;
        if (e->type == 1 && end >= start + 0x1000 && end - 0x1000 > best)
            best = end - 0x1000;
    }
    return best;
}

void action_mem(void)
{
    if (!rt_boot.n_mmap)
        tp_fail(RT_EXIT_MEM_FAILED, "mem: no memory map from the loader");
    uint64_t usable = 0;
    for (uint32_t i = 0; i < rt_boot.n_mmap; i++) {
        const struct rt_mmap_entry *e = &rt_boot.mmap[i];
        rt_printf("e820 0x%lx 0x%lx %x\n", e->start, e->end, e->type);
        if (e->type == 1)
            usable += e->end - e->start;
    }
    uint64_t page = highest_usable_page();
    if (!page)
        tp_fail(RT_EXIT_MEM_FAILED, "mem: no usable page below 4 GiB");

    /* Two complementary patterns at both ends and the middle catch stuck and aliased bits cheaply. */
    volatile uint64_t *p = phys_ptr(page);
    static const unsigned offsets[] = {0, 255, 511};
    for (int pass = 0; pass < 2; pass++) {
        for (unsigned i = 0; i < 3; i++) {
            volatile uint64_t *w = &p[offsets[i]];
            uint64_t want = (page + offsets[i] * 8) ^ (pass ? ~0x5a5a5a5a5a5a5a5aull : 0x5a5a5a5a5a5a5a5aull);
            uint64_t saved = *w;
            *w = want;
            uint64_t got = *w;
            *w = saved;
            if (got != want)
                tp_fail(RT_EXIT_MEM_FAILED, "mem: wrote 0x%lx at 0x%lx, read 0x%lx", want, page + offsets[i] * 8, got);
        }
    }
    rt_printf("mem: %u entries, %lu KiB usable, page 0x%lx ok\n", rt_boot.n_mmap, usable >> 10, page);
}

void action_modules(void)
{
    rt_printf("modules: %u\n", rt_boot.n_modules);
    for (uint32_t i = 0; i < rt_boot.n_modules; i++) {
        const struct rt_module *m = &rt_boot.modules[i];
        if (m->start + m->size > (1ull << 32))
            tp_fail(RT_EXIT_ACTION_FAILED, "module %u at 0x%lx is above 4 GiB", i, m->start);
        rt_printf("module %u size %lu sum 0x%x\n", i, m->size, rt_sum_bytes(phys_ptr(m->start), m->size));
        rt_printf("module %u cmdline %s\n", i, m->cmdline);
    }
}

/* Collects one line: '\n' ends it, '\r' is dropped so either line ending works. */
static bool line_add(char *buf, size_t *n, size_t cap, char c)
{
    if (c == '\n')
        return true;
    if (c != '\r' && *n + 1 < cap)
        buf[(*n)++] = c;
    return false;
}

void action_serial(void)
{
    char buf[128];
    size_t n = 0;
    for (;;) {
        char c;
        if (!rt_serial_poll_char(&c)) /* each poll is a port exit, so no pause is needed */
            continue;
        if (line_add(buf, &n, sizeof(buf), c))
            break;
    }
    buf[n] = '\0';
    rt_printf("serial: got %s\n", buf);
}

void action_serial_irq(void)
{
    char buf[128];
    size_t n = 0;
    rt_serial_irq_enable();
    for (;;) {
        char c;
        irq_disable();
        if (!rt_serial_irq_getc(&c)) {
            irq_enable_and_halt(); /* the UART's interrupt wakes us */
            continue;
        }
        if (line_add(buf, &n, sizeof(buf), c))
            break;
    }
    irq_disable();
    rt_serial_irq_disable();
    buf[n] = '\0';
    rt_printf("serialirq: got %s\n", buf);
}
