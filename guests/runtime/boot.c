/* C entry for every CPU, and the boot information of either protocol normalised into rt_boot.
 * Multiboot v1: spec 0.6.96 s3.3 (boot information format). PVH: Xen's struct hvm_start_info. A plain
 * ELF image (no PVH note, no multiboot header) is entered at rt_entry_pvh with nothing in EBX: no boot
 * information at all. Width-agnostic: guests/xen/rt32 builds this file with -m32 too. */
#include "internal.h"

#include <xen/arch-x86/hvm/start_info.h> /* needs <stdint.h> first: it includes nothing itself */

#define MB_BOOTLOADER_MAGIC 0x2badb002
enum mb_info_flag {
    MB_INFO_MEMORY = 1 << 0,
    MB_INFO_CMDLINE = 1 << 2,
    MB_INFO_MODS = 1 << 3,
    MB_INFO_MMAP = 1 << 6,
};
struct mb_info {
    uint32_t flags, mem_lower, mem_upper, boot_device, cmdline, mods_count, mods_addr;
    uint32_t syms[4];
    uint32_t mmap_length, mmap_addr;
};
struct mb_module {
    uint32_t mod_start, mod_end, string, reserved;
};
struct __attribute__((packed)) mb_mmap_entry {
    uint32_t size; /* of the rest of the entry: entries are walked by size + 4 */
    uint64_t addr, len;
    uint32_t type;
};

struct rt_boot rt_boot;
static char cmdline_copy[1024], args_buf[1024];

static const char *phys_str(uint64_t paddr) { return paddr ? (const char *)phys_ptr(paddr) : ""; }

static void add_mmap(uint64_t start, uint64_t len, uint32_t type)
{
    if (rt_boot.n_mmap < RT_MAX_MMAP && len)
        rt_boot.mmap[rt_boot.n_mmap++] = (struct rt_mmap_entry){start, start + len, type};
}

static void add_module(uint64_t start, uint64_t size, const char *cmdline)
{
    if (rt_boot.n_modules < RT_MAX_MODULES)
        rt_boot.modules[rt_boot.n_modules++] = (struct rt_module){start, size, cmdline};
}

static const char *from_multiboot(const struct mb_info *mbi)
{
    if (mbi->flags & MB_INFO_MMAP) {
        for (uint32_t off = 0; off + sizeof(struct mb_mmap_entry) <= mbi->mmap_length;) {
            const struct mb_mmap_entry *e = phys_ptr(mbi->mmap_addr + off);
            add_mmap(e->addr, e->len, e->type);
            off += e->size + 4;
        }
    } else if (mbi->flags & MB_INFO_MEMORY) {
        /* mem_lower/mem_upper are KiB below 640 KiB and above 1 MiB (up to the first hole). */
        add_mmap(0, (uint64_t)mbi->mem_lower << 10, 1);
        add_mmap(0x100000, (uint64_t)mbi->mem_upper << 10, 1);
    }
    if (mbi->flags & MB_INFO_MODS) {
        const struct mb_module *m = phys_ptr(mbi->mods_addr);
        for (uint32_t i = 0; i < mbi->mods_count; i++)
            add_module(m[i].mod_start, m[i].mod_end - m[i].mod_start, phys_str(m[i].string));
    }
    return (mbi->flags & MB_INFO_CMDLINE) ? phys_str(mbi->cmdline) : "";
}

static const char *from_pvh(const struct hvm_start_info *si)
{
    if (si->magic != XEN_HVM_START_MAGIC_VALUE)
        return NULL;
    if (si->version >= 1) { /* the memory map arrived with version 1 */
        const struct hvm_memmap_table_entry *e = phys_ptr(si->memmap_paddr);
        for (uint32_t i = 0; i < si->memmap_entries; i++)
            add_mmap(e[i].addr, e[i].size, e[i].type);
    }
    const struct hvm_modlist_entry *m = phys_ptr(si->modlist_paddr);
    for (uint32_t i = 0; i < si->nr_modules; i++)
        add_module(m[i].paddr, m[i].size, phys_str(m[i].cmdline_paddr));
    rt_boot.rsdp = si->rsdp_paddr;
    return phys_str(si->cmdline_paddr);
}

/* Splits the command line into words; "key=value" words get a value. */
static void parse_args(void)
{
    memcpy(args_buf, cmdline_copy, sizeof(args_buf));
    char *p = args_buf;
    while (*p && rt_boot.n_args < RT_MAX_ARGS) {
        while (*p == ' ' || *p == '\t' || *p == '\n')
            *p++ = '\0';
        if (!*p)
            break;
        struct rt_arg *a = &rt_boot.args[rt_boot.n_args++];
        a->key = p;
        a->value = NULL;
        while (*p && *p != ' ' && *p != '\t' && *p != '\n') {
            if (*p == '=' && !a->value) {
                *p = '\0';
                a->value = p + 1;
            }
            p++;
        }
    }
}

void rt_boot_normalise(void)
{
    const char *cmdline;
    rt_boot.image_format = rt_image_format;
    if (rt_boot_protocol == RT_BOOT_ELF) {
        /* Entered like Xen's domain builder enters hvmloader: no start info, so nothing to read. */
        rt_boot.protocol = RT_BOOT_ELF;
        rt_boot.protocol_name = "elf";
        cmdline = "";
    } else if (rt_boot_protocol == RT_BOOT_PVH) {
        rt_boot.protocol = RT_BOOT_PVH;
        rt_boot.protocol_name = "pvh";
        cmdline = from_pvh(phys_ptr(rt_boot_info_addr));
        if (!cmdline) {
            rt_printf("FATAL: bad PVH start info magic at 0x%x\n", rt_boot_info_addr);
            rt_exit(RT_EXIT_FATAL);
        }
    } else {
        rt_boot.protocol = RT_BOOT_MULTIBOOT;
        rt_boot.protocol_name = "multiboot";
        if (rt_boot_magic != MB_BOOTLOADER_MAGIC) {
            rt_printf("FATAL: bad multiboot magic 0x%x in EAX\n", rt_boot_magic);
            rt_exit(RT_EXIT_FATAL);
        }
        cmdline = from_multiboot(phys_ptr(rt_boot_info_addr));
    }
    /* Copied so that nothing the program does to low memory can change it. */
    size_t n = strlen(cmdline);
    if (n >= sizeof(cmdline_copy))
        n = sizeof(cmdline_copy) - 1;
    memcpy(cmdline_copy, cmdline, n);
    rt_boot.cmdline = cmdline_copy;
    parse_args();
}

static __attribute__((noreturn)) void bsp_main(void)
{
    rt_boot.tsc_at_entry = rdtsc();
    rt_idt_build();
    rt_cpu_init(0);
    rt_serial_init();
    rt_lapic_init();
    rt_boot_normalise();
    rt_exit((uint8_t)rt_main());
}

/* Called from boot32.S on every CPU's own stack, once it is in long mode. */
void rt_cpu_entry(uint32_t index)
{
    if (index == 0)
        bsp_main();
    rt_smp_ap_main(index);
}
