/* testprog: runs the actions named on its command line, in order, then ends the VM. The words, and the
 * lines each action prints, are the contract with evmm's integration tests (guests/README.md). */
#include "testprog.h"

struct action {
    const char *word;
    void (*run)(void);
};

static const struct action actions[] = {
    {"hello", action_hello},   {"spin", action_spin},       {"smp", action_smp},         {"mem", action_mem},       {"acpi", action_acpi},
    {"irq", action_irq},       {"modules", action_modules}, {"serial", action_serial}, {"serialirq", action_serial_irq},
    {"assist", action_assist}, {"assist-force", action_assist_force}, {"assist-fault", action_assist_fault}, {"assist-mem", action_assist_mem}, {"assist-fpu", action_assist_fpu}, {"badinsn", action_badinsn}, {"cpuid", action_cpuid},     {"fwcfg", action_fwcfg},   {"rtc", action_rtc},
    {"doorbell", action_doorbell}, {"ring3", action_ring3}, {"pvsuspend", action_pvsuspend}, {"s3", action_s3},
    {"virtio", action_virtio}, {"vqbad", action_vqbad}, {"netarp", action_netarp}, {"consread", action_consread},
    {"rtcalarm", action_rtc_alarm}, {"rtcuip", action_rtc_uip}, {"rtcpie", action_rtc_pie},
};

const char *tp_value;

/* key=value words that only parameterise an action (which reads them with rt_arg()): skipped here. */
static const char *const params[] = {"n", "at", "gsi", "alarm", "ack"};
/* Actions that take word=value (they read the value from tp_value). */
static const char *const valued[] = {"doorbell", "ring3", "rtcpie", "vqbad"};

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

/* module.param=value, as Linux reads the words meant for its modules (evmm adds virtio_mmio.device=...). */
static bool is_module_param(const struct rt_arg *a)
{
    if (!a->value)
        return false;
    for (const char *p = a->key; *p; p++)
        if (*p == '.')
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
        if (is_image_name(a) || is_module_param(a))
            continue;
        end_with(a); /* returns only if the word does not end the run */
        bool param = false;
        for (size_t j = 0; j < sizeof(params) / sizeof(params[0]); j++)
            param |= a->value && !strcmp(params[j], a->key);
        if (param)
            continue;
        const struct action *act = NULL;
        for (size_t j = 0; j < sizeof(actions) / sizeof(actions[0]); j++)
            if (!strcmp(actions[j].word, a->key))
                act = &actions[j];
        bool takes_value = false;
        for (size_t j = 0; j < sizeof(valued) / sizeof(valued[0]); j++)
            takes_value |= !strcmp(valued[j], a->key);
        if (!act || (a->value && !takes_value))
            tp_fail(RT_EXIT_BAD_CMDLINE, "testprog: unknown word '%s'", a->key);
        tp_value = a->value;
        act->run();
    }
    return RT_EXIT_OK;
}
