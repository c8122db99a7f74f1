/* The PC platform devices the runtime reads: fw_cfg (QEMU docs/specs/fw_cfg.rst, I/O interface), the
 * MC146818 RTC in CMOS, and the ways out: isa-debug-exit, ACPI S5, the i8042 reset line. */
#include "internal.h"

enum fwcfg_port { FW_CFG_SELECTOR = 0x510, FW_CFG_DATA = 0x511 };
enum fwcfg_key { FW_CFG_SIGNATURE = 0x00, FW_CFG_RAM_SIZE = 0x03, FW_CFG_NB_CPUS = 0x05 };

void rt_fwcfg_read(uint16_t key, void *buf, size_t n)
{
    outw(FW_CFG_SELECTOR, key);
    for (size_t i = 0; i < n; i++)
        ((uint8_t *)buf)[i] = inb(FW_CFG_DATA);
}

bool rt_fwcfg_present(void)
{
    static int present = -1; /* cached: four port reads are forty microseconds on the slow host */
    if (present < 0) {
        char sig[4];
        rt_fwcfg_read(FW_CFG_SIGNATURE, sig, 4);
        present = !memcmp(sig, "QEMU", 4);
    }
    return present;
}

uint16_t rt_fwcfg_nb_cpus(void)
{
    static uint16_t n;
    if (!n) {
        uint8_t b[2] = {1, 0};
        if (rt_fwcfg_present())
            rt_fwcfg_read(FW_CFG_NB_CPUS, b, 2);
        n = (uint16_t)(b[0] | b[1] << 8); /* fw_cfg items are little-endian */
        if (!n)
            n = 1;
    }
    return n;
}

uint64_t rt_fwcfg_ram_size(void)
{
    uint8_t b[8] = {0};
    if (rt_fwcfg_present())
        rt_fwcfg_read(FW_CFG_RAM_SIZE, b, 8);
    uint64_t v = 0;
    for (int i = 7; i >= 0; i--)
        v = v << 8 | b[i];
    return v;
}

/* ---- RTC: MC146818 registers through the CMOS index/data ports ---- */
enum rtc_reg { RTC_SEC = 0x0, RTC_MIN = 0x2, RTC_HOUR = 0x4, RTC_DAY = 0x7, RTC_MONTH = 0x8, RTC_YEAR = 0x9 };
#define RTC_REG_A 0x0a
#define RTC_REG_B 0x0b
#define RTC_A_UIP 0x80    /* update in progress: the time registers are changing */
#define RTC_B_BINARY 0x04 /* DM: binary rather than BCD */
#define RTC_B_24H 0x02
#define RTC_HOUR_PM 0x80 /* in 12-hour mode */

uint8_t rt_cmos_read(uint8_t reg)
{
    outb(0x70, reg);
    return inb(0x71);
}

void rt_cmos_write(uint8_t reg, uint8_t v)
{
    outb(0x70, reg);
    outb(0x71, v);
}

static void rtc_snapshot(uint8_t r[6])
{
    static const uint8_t regs[6] = {RTC_YEAR, RTC_MONTH, RTC_DAY, RTC_HOUR, RTC_MIN, RTC_SEC};
    for (int i = 0; i < 6; i++)
        r[i] = rt_cmos_read(regs[i]);
}

static uint32_t from_bcd(uint8_t v) { return (v >> 4) * 10u + (v & 0xf); }

bool rt_rtc_read(struct rt_time *t)
{
    /* After UIP reads 0 the registers hold still for at least 244 us, but our port exits are slow enough to
     * overrun that, so also read twice and accept two identical snapshots. */
    uint8_t now[6] = {0}, prev[6];
    bool stable = false;
    for (int attempt = 0; attempt < 8 && !stable; attempt++) {
        int spins = 0;
        while ((rt_cmos_read(RTC_REG_A) & RTC_A_UIP) && ++spins < 10000)
            ;
        memcpy(prev, now, sizeof(now));
        rtc_snapshot(now);
        stable = attempt > 0 && !memcmp(prev, now, sizeof(now));
    }
    if (!stable)
        return false;
    uint8_t b = rt_cmos_read(RTC_REG_B);
    bool pm = !(b & RTC_B_24H) && (now[3] & RTC_HOUR_PM);
    now[3] &= (uint8_t)~RTC_HOUR_PM;
    uint32_t v[6];
    for (int i = 0; i < 6; i++)
        v[i] = (b & RTC_B_BINARY) ? now[i] : from_bcd(now[i]);
    if (!(b & RTC_B_24H)) /* 12-hour clock: 12 AM is 0:00, 12 PM is 12:00 */
        v[3] = v[3] % 12 + (pm ? 12 : 0);
    *t = (struct rt_time){2000 + v[0], v[1], v[2], v[3], v[4], v[5]};
    return true;
}

/* ---- leaving the VM ---- */
uint16_t rt_pm1a_cnt_port = 0x604; /* replaced by the FADT's PM1a_CNT_BLK once ACPI was scanned */

__attribute__((noreturn)) static void give_up(const char *what, uint8_t code)
{
    rt_panic_printf("%s did not stop the VM\n", what);
    outb(0xf4, code);
    for (;;)
        __asm__ volatile("cli; hlt");
}

void rt_exit(uint8_t code)
{
    outb(0xf4, code); /* isa-debug-exit: the VMM exits with (code << 1) | 1 */
    give_up("debug-exit (port 0xf4)", code);
}

void rt_poweroff(void)
{
    /* ACPI 6.5 s4.8.3.2.1: SLP_TYP (bits 10-12) with SLP_EN (bit 13). SLP_TYP 0 is what the DSDT's \_S5
     * package gives on this platform (evmm's and QEMU's alike). */
    outw(rt_pm1a_cnt_port, (0 << 10) | (1 << 13));
    rt_sleep_us(100000); /* a VMM may act on the request asynchronously */
    give_up("ACPI S5 poweroff", RT_EXIT_POWER_FAILED);
}

void rt_pv_suspend(void)
{
    outb(0x6f4, 1); /* evmm's platform::kPvControlPort, kPvSuspend */
}

void rt_reset(void)
{
    /* i8042 command 0xFE pulses the CPU reset line; the controller takes commands once its input buffer
     * (status bit 1) is empty. */
    for (int i = 0; i < 10000 && (inb(0x64) & 0x02); i++)
        ;
    outb(0x64, 0xfe);
    rt_sleep_us(100000);
    give_up("i8042 reset", RT_EXIT_POWER_FAILED);
}

void rt_triple_fault(void)
{
    /* With an empty IDT the #UD cannot be delivered, nor can the #DF that follows: a shutdown. */
    struct __attribute__((packed)) {
        uint16_t limit;
        uint64_t base;
    } empty = {0, 0};
    __asm__ volatile("lidt %0; ud2" ::"m"(empty));
    give_up("triple fault", RT_EXIT_POWER_FAILED);
}
