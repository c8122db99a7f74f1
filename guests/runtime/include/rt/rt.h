/* Public interface of the evmm guest runtime: what a guest program may call.
 * A program defines rt_main(); the runtime has booted the BSP into long mode, set up the IDT, the serial
 * port and the local APIC, and normalised the boot information before calling it. */
#ifndef RT_RT_H
#define RT_RT_H

#include <stdarg.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "rt/layout.h" /* RT_MAX_CPUS */

#define RT_MAX_MMAP 32
#define RT_MAX_MODULES 16
#define RT_MAX_ARGS 32

/* Exit codes a guest hands to debug-exit; the VMM reports (code << 1) | 1. */
enum rt_exit_code {
    RT_EXIT_OK = 0,
    RT_EXIT_VIRTIO_FAILED = 0x76, /* a virtio device was missing, refused a good request or took a bad one */
    RT_EXIT_ACTION_FAILED = 0x77, /* fw_cfg, rtc, modules or serial check failed */
    RT_EXIT_POWER_FAILED = 0x78,  /* poweroff/reset did not stop the VM */
    RT_EXIT_IRQ_FAILED = 0x79,    /* timer interrupts or exception recovery failed */
    RT_EXIT_ASSIST_FAILED = 0x7a, /* an instruction the VMM completes gave a wrong result */
    RT_EXIT_MEM_FAILED = 0x7b,    /* memory map missing or RAM readback failed */
    RT_EXIT_BAD_CMDLINE = 0x7c,   /* unknown command-line word */
    RT_EXIT_ACPI_FAILED = 0x7d,   /* ACPI or MP table missing or invalid */
    RT_EXIT_SMP_FAILED = 0x7e,    /* an AP never arrived or APIC IDs collide */
    RT_EXIT_FATAL = 0x7f,         /* unexpected exception or interrupt */
};

/* Interrupt vectors the runtime owns; programs use RT_VEC_USER and up for their own. */
enum rt_vector {
    RT_VEC_DE = 0,
    RT_VEC_BP = 3,
    RT_VEC_UD = 6,
    RT_VEC_DF = 8,
    RT_VEC_GP = 13,
    RT_VEC_PF = 14,
    RT_VEC_TIMEOUT = 0x20, /* LAPIC one-shot used by rt_wait() */
    RT_VEC_SERIAL = 0x24,  /* COM1 (ISA IRQ4) through the IOAPIC */
    RT_VEC_VIRTIO = 0x28,  /* every virtio-mmio device's GSI (rt/virtio.h) */
    RT_VEC_USER = 0x30,
    RT_VEC_WAKE = 0xf0,   /* IPI: an AP has work in its mailbox */
    RT_VEC_NOTIFY = 0xf1, /* IPI to the BSP: an AP arrived or finished work */
    RT_VEC_SPURIOUS = 0xff,
};

/* ---- boot information, normalised across Multiboot v1, PVH and plain ELF ---- */
/* RT_BOOT_ELF: a plain ELF entered at rt_entry_pvh with EBX = 0, as evmm enters an image that has neither
 * a PVH note nor a multiboot header. No command line, memory map or modules. The values are those
 * boot32.S stores in rt_boot_protocol. */
enum rt_boot_protocol { RT_BOOT_MULTIBOOT = 0, RT_BOOT_PVH = 1, RT_BOOT_ELF = 2 };

/* Types follow the E820 convention, which Multiboot's mmap and PVH's memmap share (1 = usable RAM). */
struct rt_mmap_entry {
    uint64_t start, end; /* end is exclusive */
    uint32_t type;
};
struct rt_module {
    uint64_t start, size;
    const char *cmdline; /* never NULL */
};
struct rt_arg {
    const char *key;
    const char *value; /* NULL for a bare word */
};
struct rt_boot {
    enum rt_boot_protocol protocol;
    const char *protocol_name; /* "multiboot", "pvh" or "elf" */
    const char *image_format;  /* "mb.elf", "mb.bin", "pvh.elf" or "elf": which header this image carries */
    const char *cmdline;       /* never NULL */
    uint32_t n_mmap;
    struct rt_mmap_entry mmap[RT_MAX_MMAP];
    uint32_t n_modules;
    struct rt_module modules[RT_MAX_MODULES];
    uint64_t rsdp; /* from PVH start info, 0 if the loader gave none */
    uint32_t n_args;
    struct rt_arg args[RT_MAX_ARGS];
    uint64_t tsc_at_entry; /* read in 64-bit mode at the start of the BSP's C code */
};
extern struct rt_boot rt_boot;

int rt_main(void); /* provided by the program; its return value goes to rt_exit() */

/* ---- console and formatting ---- */
void rt_serial_init(void);
void rt_serial_write(const char *s, size_t n);
bool rt_serial_poll_char(char *c); /* polled receive: LSR bit 0 */
int rt_printf(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
int rt_vsnprintf(char *buf, size_t size, const char *fmt, va_list ap);
int rt_snprintf(char *buf, size_t size, const char *fmt, ...) __attribute__((format(printf, 3, 4)));
/* Interrupt-driven receive: COM1's IRQ4 through the IOAPIC to RT_VEC_SERIAL on the BSP. */
void rt_serial_irq_enable(void);
void rt_serial_irq_disable(void);
bool rt_serial_irq_getc(char *c); /* takes a byte the interrupt handler buffered */

/* ---- power and exit ---- */
__attribute__((noreturn)) void rt_exit(uint8_t code);
__attribute__((noreturn)) void rt_poweroff(void);
__attribute__((noreturn)) void rt_reset(void);
__attribute__((noreturn)) void rt_triple_fault(void);
/* evmm's paravirtual suspend (control port 0x6f4, value 1): this vCPU sleeps until the VMM resumes
 * it, normally on a wakeup event aimed at it (an interrupt, an RTC alarm, an API wake); then it
 * returns. Callers keep IF=0 so the interrupt that woke them is taken when they choose. Not under
 * other VMMs, which ignore the port. */
void rt_pv_suspend(void);

/* ---- interrupts and exceptions ---- */
#ifdef __x86_64__
struct rt_frame { /* layout fixed by isr.S */
    uint64_t r15, r14, r13, r12, r11, r10, r9, r8, rbp, rdi, rsi, rdx, rcx, rbx, rax;
    uint64_t vector, error;
    uint64_t rip, cs, rflags, rsp, ss; /* pushed by the CPU */
};
#else /* the 32-bit runtime of guests/xen/rt32, which implements the part of this API the Xen guest uses */
struct rt_frame { /* layout fixed by rt32/isr32.S: pusha order, then the stub's and the CPU's pushes */
    uint32_t edi, esi, ebp, esp_at_pusha, ebx, edx, ecx, eax;
    uint32_t vector, error;
    uint32_t eip, cs, eflags; /* pushed by the CPU; no stack switch at CPL0 */
};
#endif
typedef void (*rt_handler)(struct rt_frame *);
void rt_set_handler(uint8_t vector, rt_handler h); /* exceptions and int n: no EOI */
void rt_set_irq_handler(uint8_t vector, rt_handler h); /* APIC-delivered: EOI after the handler */
/* fn runs on an unexpected exception or interrupt, after the FATAL line and before the debug-exit with
 * RT_EXIT_FATAL, which follows if fn returns. For a program with a better way to report a crash (the Xen
 * guest's SCHEDOP_shutdown). */
void rt_on_fatal(void (*fn)(void));

/* ---- local APIC (xAPIC MMIO at 0xFEE00000) and IOAPIC ---- */
uint32_t rt_lapic_id(void);
void rt_lapic_eoi(void);
/* The timer counts at the APIC bus clock: 1 GHz for KVM's in-kernel LAPIC and QEMU's, so 1 count = 1 ns. */
void rt_lapic_timer_start(uint8_t vector, uint32_t period_ns, bool periodic);
void rt_lapic_timer_stop(void);
void rt_lapic_send_ipi(uint32_t apic_id, uint8_t vector);
void rt_ioapic_route(uint32_t gsi, uint8_t vector, uint32_t apic_id);
/* Sleeps with hlt until done(arg) holds or timeout_us passes; whoever makes done true must interrupt this
 * CPU (an IPI) so it rechecks. Returns done's final value. */
bool rt_wait(bool (*done)(void *), void *arg, uint32_t timeout_us);
void rt_sleep_us(uint32_t us);
uint64_t rt_tsc_khz(void); /* the hypervisor timing leaf (CPUID 0x40000010), else measured against the LAPIC timer (2 ms); cached */
bool rt_tsc_khz_stated(void); /* whether rt_tsc_khz() came from the hypervisor rather than a measurement */

/* ---- CPL3 ---- */
/* Runs fn(arg) at CPL3 with IF=0 on a 4 KiB user stack (in/out allowed by the TSS I/O bitmap), then
 * returns at CPL0 with IF as it was. On the slow host CPL3 code runs natively while CPL0 code is
 * emulated. fn comes back through a #UD (user.S); any other exception there is fatal, as at CPL0, so fn
 * must not fault and must not call the runtime. BSP only, not reentrant. */
void rt_run_user(void (*fn)(void *), void *arg);

/* ---- SMP ---- */
/* Called on each AP after it is up, in CPU-index order, with the console free to print. */
typedef void (*rt_ap_report)(uint32_t index, uint32_t apic_id);
uint32_t rt_smp_start(rt_ap_report report); /* returns CPUs up including the BSP; idempotent */
uint32_t rt_cpu_count(void);                /* CPUs up so far */
uint32_t rt_cpu_index(void);                /* 0 on the BSP */
uint32_t rt_cpu_apic_id(uint32_t index);
bool rt_run_on(uint32_t index, void (*fn)(void *), void *arg); /* blocks; false on timeout */

/* ---- platform devices ---- */
bool rt_fwcfg_present(void);
uint16_t rt_fwcfg_nb_cpus(void); /* 1 if fw_cfg is absent */
uint64_t rt_fwcfg_ram_size(void);
void rt_fwcfg_read(uint16_t key, void *buf, size_t n);

struct rt_time {
    uint32_t year, month, day, hour, minute, second;
};
bool rt_rtc_read(struct rt_time *t); /* false if the RTC never leaves its update cycle */
/* One CMOS/RTC register through the index (0x70) and data (0x71) ports; NMIs stay enabled. */
uint8_t rt_cmos_read(uint8_t reg);
void rt_cmos_write(uint8_t reg, uint8_t v);

/* ACPI (spec 6.5 ch. 5) and MP (Intel MP spec 1.4) tables, found and checked by rt_acpi_scan(). */
struct rt_acpi {
    uint64_t rsdp;
    uint8_t revision;
    bool xsdt; /* false: the RSDT of an ACPI 1.0 RSDP */
    uint32_t n_tables;
    char sigs[24][5];
    uint32_t madt_cpus, madt_ioapics, ioapic_addr;
    uint64_t dsdt, facs;
    uint16_t pm1a_cnt; /* PM1a_CNT_BLK port from the FADT */
    uint64_t mptable;  /* the MP floating pointer */
    uint32_t mp_cpus;
    char error[96]; /* first problem, empty when all checks passed */
};
bool rt_acpi_scan(struct rt_acpi *out);

/* ---- small library ---- */
void *memcpy(void *dst, const void *src, size_t n);
void *memset(void *dst, int c, size_t n);
void *memmove(void *dst, const void *src, size_t n);
int memcmp(const void *a, const void *b, size_t n);
void *memchr(const void *s, int c, size_t n);
size_t strlen(const char *s);
int strcmp(const char *a, const char *b);
int strncmp(const char *a, const char *b, size_t n);
uint32_t rt_sum_bytes(const void *p, size_t n); /* 32-bit sum of bytes; ACPI checksums use its low byte */
/* First naturally aligned 8- or 4-byte word equal to value in [start, start + bytes), or NULL. */
const void *rt_find_u64(const void *start, size_t bytes, uint64_t value);
const void *rt_find_u32(const void *start, size_t bytes, uint32_t value);
bool rt_parse_u64(const char *s, uint64_t *out);  /* decimal or 0x hex */
const char *rt_arg(const char *key);             /* value of key=value, "" for a bare word, NULL if absent */

typedef struct {
    volatile uint32_t locked;
} rt_spinlock;
void rt_spin_lock(rt_spinlock *l);
void rt_spin_unlock(rt_spinlock *l);

#endif
