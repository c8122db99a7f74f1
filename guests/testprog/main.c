/* testprog: runs the actions named on its command line, in order, then ends the VM. The words, and the
 * lines each action prints, are the contract with evmm's integration tests (guests/README.md). */
#include "testprog.h"

struct action {
    const char *word;
    void (*run)(void);
};

static const struct action actions[] = {
    {"hello", action_hello},   {"smp", action_smp},         {"mem", action_mem},       {"acpi", action_acpi},
    {"irq", action_irq},       {"modules", action_modules}, {"serial", action_serial}, {"serialirq", action_serial_irq},
    {"assist", action_assist}, {"assist-force", action_assist_force}, {"badinsn", action_badinsn}, {"cpuid", action_cpuid},     {"fwcfg", action_fwcfg},   {"rtc", action_rtc},
};

void tp_fail(uint8_t code, const char *fmt, ...)
{
    char line[256];
    va_list ap;
    va_start(ap, fmt);
    rt_vsnprintf(line, sizeof(line), fmt, ap);
    va_end(ap);
    rt_printf("%s\n", line);
    rt_exit(code);
}

/* Multiboot loaders (GRUB, QEMU) put the image's file name first on the command line. */
static bool is_image_name(const struct rt_arg *a)
{
    if (a->value)
        return false;
    for (const char *p = a->key; *p; p++)
        if (*p == '/' || *p == '.')
            return true;
    return false;
}

static void end_with(const struct rt_arg *a)
{
    if (!strcmp(a->key, "exit")) {
        uint64_t code;
        if (!a->value || !rt_parse_u64(a->value, &code) || code > 0xff)
            tp_fail(RT_EXIT_BAD_CMDLINE, "testprog: bad exit code '%s'", a->value ? a->value : "");
        rt_exit((uint8_t)code);
    }
    if (!strcmp(a->key, "poweroff"))
        rt_poweroff();
    if (!strcmp(a->key, "reset"))
        rt_reset();
    if (!strcmp(a->key, "triplefault"))
        rt_triple_fault();
}

int rt_main(void)
{
    for (uint32_t i = 0; i < rt_boot.n_args; i++) {
        const struct rt_arg *a = &rt_boot.args[i];
        if (is_image_name(a))
            continue;
        end_with(a); /* returns only if the word does not end the run */
        const struct action *act = NULL;
        for (size_t j = 0; j < sizeof(actions) / sizeof(actions[0]); j++)
            if (!strcmp(actions[j].word, a->key))
                act = &actions[j];
        if (!act || a->value)
            tp_fail(RT_EXIT_BAD_CMDLINE, "testprog: unknown word '%s'", a->key);
        act->run();
    }
    return RT_EXIT_OK;
}
