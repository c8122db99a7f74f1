/* Actions that read the platform's firmware-facing devices: ACPI and MP tables, fw_cfg, the RTC. */
#include "testprog.h"

void action_acpi(void)
{
    struct rt_acpi a;
    if (!rt_acpi_scan(&a))
        tp_fail(RT_EXIT_ACPI_FAILED, "acpi: %s", a.error);
    char sigs[24 * 5 + 1] = "";
    for (uint32_t i = 0; i < a.n_tables; i++)
        rt_snprintf(sigs + 5 * i, 6, " %.4s", a.sigs[i]);
    rt_printf("acpi: rsdp 0x%lx rev %u %s:%s\n", a.rsdp, a.revision, a.xsdt ? "xsdt" : "rsdt", sigs);
    rt_printf("acpi: dsdt 0x%lx facs 0x%lx pm1a_cnt 0x%x ioapic 0x%x\n", a.dsdt, a.facs, a.pm1a_cnt, a.ioapic_addr);
    rt_printf("acpi: mptable 0x%lx %u cpus\n", a.mptable, a.mp_cpus);
    uint32_t want = rt_fwcfg_nb_cpus();
    if (a.madt_cpus != want)
        tp_fail(RT_EXIT_ACPI_FAILED, "acpi: MADT lists %u cpus, fw_cfg says %u", a.madt_cpus, want);
    if (!a.madt_ioapics)
        tp_fail(RT_EXIT_ACPI_FAILED, "acpi: MADT lists no IOAPIC");
    rt_printf("acpi: ok %u cpus\n", a.madt_cpus);
}

void action_fwcfg(void)
{
    char sig[5] = {0};
    rt_fwcfg_read(0x0000, sig, 4);
    if (!rt_fwcfg_present())
        tp_fail(RT_EXIT_ACTION_FAILED, "fwcfg: bad signature '%s'", sig);
    rt_printf("fwcfg: signature %s cpus %u ram 0x%lx\n", sig, rt_fwcfg_nb_cpus(), rt_fwcfg_ram_size());
}

void action_rtc(void)
{
    struct rt_time t;
    if (!rt_rtc_read(&t))
        tp_fail(RT_EXIT_ACTION_FAILED, "rtc: registers never held still");
    rt_printf("rtc: %04u-%02u-%02u %02u:%02u:%02u\n", t.year, t.month, t.day, t.hour, t.minute, t.second);
}
