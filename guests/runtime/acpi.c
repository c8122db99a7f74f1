/* Finds and checks the firmware tables a PC guest relies on: ACPI (spec 6.5 ch. 5: RSDP s5.2.5, XSDT
 * s5.2.8, FADT s5.2.9, FACS s5.2.10, MADT s5.2.12) and the Intel MP table (MP spec 1.4 ch. 4). Every
 * checksum is over the table's own length; any mismatch is reported, never skipped. */
#include "internal.h"

struct __attribute__((packed)) rsdp {
    char signature[8];
    uint8_t checksum; /* over the first 20 bytes (the ACPI 1.0 structure) */
    char oem_id[6];
    uint8_t revision;
    uint32_t rsdt;
    uint32_t length;
    uint64_t xsdt;
    uint8_t extended_checksum; /* over length bytes, revision 2 and up */
    uint8_t reserved[3];
};

struct __attribute__((packed)) sdt_header {
    char signature[4];
    uint32_t length;
    uint8_t revision, checksum;
    char oem_id[6], oem_table_id[8];
    uint32_t oem_revision, creator_id, creator_revision;
};

/* FADT field offsets (ACPI 6.5 table 5.9). */
enum fadt_offset {
    FADT_FIRMWARE_CTRL = 36,
    FADT_DSDT = 40,
    FADT_PM1A_CNT_BLK = 64,
    FADT_X_FIRMWARE_CTRL = 132,
    FADT_X_DSDT = 140,
};
enum madt_type { MADT_LOCAL_APIC = 0, MADT_IO_APIC = 1, MADT_LOCAL_X2APIC = 9 };
#define MADT_ENTRIES 44 /* header, local APIC address, flags */

extern uint16_t rt_pm1a_cnt_port;

typedef uint32_t __attribute__((may_alias, aligned(1))) u32u;
typedef uint64_t __attribute__((may_alias, aligned(1))) u64u;
static uint32_t rd32(const void *p, size_t off) { return *(const u32u *)((const uint8_t *)p + off); }
static uint64_t rd64(const void *p, size_t off) { return *(const u64u *)((const uint8_t *)p + off); }

static bool fail(struct rt_acpi *a, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
static bool fail(struct rt_acpi *a, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    rt_vsnprintf(a->error, sizeof(a->error), fmt, ap);
    va_end(ap);
    return false;
}

static bool sums_to_zero(const void *p, size_t n) { return (rt_sum_bytes(p, n) & 0xff) == 0; }

/* Returns the table if its header and checksum hold, else NULL with a->error set. */
static const struct sdt_header *table(struct rt_acpi *a, uint64_t addr, const char *want)
{
    if (!addr || addr >= (1ull << 32)) { /* the runtime maps only the first 4 GiB */
        fail(a, "%s at 0x%lx is outside the first 4 GiB", want ? want : "table", addr);
        return NULL;
    }
    const struct sdt_header *h = phys_ptr(addr);
    if (want && memcmp(h->signature, want, 4)) {
        fail(a, "expected %s at 0x%lx, found %.4s", want, addr, h->signature);
        return NULL;
    }
    if (h->length < sizeof(*h) || h->length > (1u << 20)) {
        fail(a, "%.4s at 0x%lx has bad length %u", h->signature, addr, h->length);
        return NULL;
    }
    if (!sums_to_zero(h, h->length)) {
        fail(a, "%.4s checksum bad", h->signature);
        return NULL;
    }
    return h;
}

/* The signature search is one repne scas per candidate: the bytes are scanned inside the emulator, not by
 * a guest loop costing several emulated instructions per step. Only 16-byte aligned hits count. */
static uint64_t find_signed(uint64_t start, uint64_t len, uint64_t sig, bool wide, size_t checked_len)
{
    const uint8_t *p = phys_ptr(start), *end = p + len;
    while (p < end) {
        size_t left = (size_t)(end - p);
        const uint8_t *hit = wide ? rt_find_u64(p, left, sig) : rt_find_u32(p, left, (uint32_t)sig);
        if (!hit)
            return 0;
        size_t n = checked_len ? checked_len : hit[8] * 16u; /* MP: length in 16-byte units at offset 8 */
        if (!((uintptr_t)hit & 15) && n && hit + n <= end && sums_to_zero(hit, n))
            return (uint64_t)hit;
        p = hit + (wide ? 8 : 4);
    }
    return 0;
}

/* ACPI 6.5 s5.2.5.1: on a 16-byte boundary in 0xE0000-0xFFFFF; the checksum of the first 20 bytes tells
 * it from stray bytes that happen to match. */
static uint64_t find_rsdp(void)
{
    return find_signed(0xe0000, 0x20000, 0x2052545020445352ull /* "RSD PTR " */, true, 20);
}

static bool check_fadt(struct rt_acpi *a, const struct sdt_header *f)
{
    uint64_t dsdt = rd32(f, FADT_DSDT), facs = rd32(f, FADT_FIRMWARE_CTRL);
    if (f->length >= FADT_X_DSDT + 8 && rd64(f, FADT_X_DSDT))
        dsdt = rd64(f, FADT_X_DSDT);
    if (f->length >= FADT_X_FIRMWARE_CTRL + 8 && rd64(f, FADT_X_FIRMWARE_CTRL))
        facs = rd64(f, FADT_X_FIRMWARE_CTRL);
    if (!table(a, dsdt, "DSDT"))
        return false;
    a->dsdt = dsdt;
    /* The FACS has no checksum; its signature and minimum length (64) are what can be checked. */
    if (!facs || facs >= (1ull << 32))
        return fail(a, "FADT has no usable FACS address (0x%lx)", facs);
    const struct sdt_header *fa = phys_ptr(facs);
    if (memcmp(fa->signature, "FACS", 4) || fa->length < 64)
        return fail(a, "no valid FACS at 0x%lx", facs);
    a->facs = facs;
    a->pm1a_cnt = (uint16_t)rd32(f, FADT_PM1A_CNT_BLK);
    if (a->pm1a_cnt)
        rt_pm1a_cnt_port = a->pm1a_cnt;
    return true;
}

static bool check_madt(struct rt_acpi *a, const struct sdt_header *m)
{
    const uint8_t *p = (const uint8_t *)m, *end = p + m->length;
    for (p += MADT_ENTRIES; p + 2 <= end;) {
        uint8_t type = p[0], len = p[1];
        if (len < 2 || p + len > end)
            return fail(a, "MADT entry of type %u has bad length %u", type, len);
        if (type == MADT_LOCAL_APIC && len >= 8 && (rd32(p, 4) & 1)) /* flags bit 0: enabled */
            a->madt_cpus++;
        else if (type == MADT_LOCAL_X2APIC && len >= 16 && (rd32(p, 8) & 1))
            a->madt_cpus++;
        else if (type == MADT_IO_APIC && len >= 12) {
            if (!a->madt_ioapics++)
                a->ioapic_addr = rd32(p, 4);
        }
        p += len;
    }
    return true;
}

static bool check_acpi(struct rt_acpi *a)
{
    uint64_t found = find_rsdp();
    if (!found)
        return fail(a, "no RSDP in 0xE0000-0xFFFFF");
    a->rsdp = found;
    /* PVH hands the RSDP over directly (hvm_start_info.rsdp_paddr); it must be the one the scan finds. */
    if (rt_boot.rsdp && rt_boot.rsdp != found)
        return fail(a, "PVH start info points at RSDP 0x%lx, the scan found 0x%lx", rt_boot.rsdp, found);
    const struct rsdp *r = phys_ptr(found);
    a->revision = r->revision;
    a->xsdt = r->revision >= 2 && r->xsdt;
    if (r->revision >= 2 && (r->length < sizeof(*r) || r->length > 4096 || !sums_to_zero(r, r->length)))
        return fail(a, "RSDP extended checksum bad");

    const struct sdt_header *root = a->xsdt ? table(a, r->xsdt, "XSDT") : table(a, r->rsdt, "RSDT");
    if (!root)
        return false;
    size_t entry = a->xsdt ? 8 : 4;
    size_t n = (root->length - sizeof(*root)) / entry;
    bool fadt = false, madt = false;
    for (size_t i = 0; i < n; i++) {
        size_t off = sizeof(*root) + i * entry;
        uint64_t addr = a->xsdt ? rd64(root, off) : rd32(root, off);
        const struct sdt_header *t = table(a, addr, NULL);
        if (!t)
            return false;
        if (a->n_tables < sizeof(a->sigs) / sizeof(a->sigs[0]))
            memcpy(a->sigs[a->n_tables++], t->signature, 4);
        if (!memcmp(t->signature, "FACP", 4)) {
            if (!check_fadt(a, t))
                return false;
            fadt = true;
        } else if (!memcmp(t->signature, "APIC", 4)) {
            if (!check_madt(a, t))
                return false;
            madt = true;
        }
    }
    if (!fadt)
        return fail(a, "no FADT (FACP) in the %s", a->xsdt ? "XSDT" : "RSDT");
    if (!madt)
        return fail(a, "no MADT (APIC) in the %s", a->xsdt ? "XSDT" : "RSDT");
    return true;
}

/* MP spec 1.4 s4.1: the floating pointer lies in the first KiB of the EBDA, the last KiB of base memory,
 * or the BIOS ROM at 0xF0000-0xFFFFF, on a 16-byte boundary. */
static uint64_t scan_mp(uint64_t start, uint64_t len)
{
    return find_signed(start, len, 0x5f504d5f /* "_MP_" */, false, 0);
}

static bool check_mp(struct rt_acpi *a)
{
    uint64_t ebda = (uint64_t)*(volatile uint16_t *)phys_ptr(0x40e) << 4;
    uint64_t base_kib = *(volatile uint16_t *)phys_ptr(0x413);
    uint64_t fp = 0;
    if (ebda >= 0x80000 && ebda < 0xa0000)
        fp = scan_mp(ebda, 1024);
    if (!fp)
        fp = scan_mp(base_kib >= 512 && base_kib <= 640 ? (base_kib - 1) << 10 : 0x9fc00, 1024);
    if (!fp)
        fp = scan_mp(0xf0000, 0x10000);
    if (!fp)
        return fail(a, "no MP floating pointer structure");
    a->mptable = fp;
    const uint8_t *f = phys_ptr(fp);
    uint32_t cfg = rd32(f, 4);
    if (f[11]) /* MP feature byte 1: a default configuration, no table to check */
        return true;
    if (!cfg)
        return fail(a, "MP floating pointer has no configuration table");
    const uint8_t *c = phys_ptr(cfg);
    uint16_t base_len = (uint16_t)(c[4] | c[5] << 8), count = (uint16_t)(c[34] | c[35] << 8);
    if (memcmp(c, "PCMP", 4) || base_len < 44 || !sums_to_zero(c, base_len))
        return fail(a, "MP configuration table at 0x%x invalid", cfg);
    /* Entries: processor (type 0) is 20 bytes, the others 8 (MP spec table 4-3). */
    const uint8_t *e = c + 44, *end = c + base_len;
    for (uint16_t i = 0; i < count && e < end; i++) {
        if (e[0] == 0) {
            if (e[3] & 1) /* CPU flags: EN */
                a->mp_cpus++;
            e += 20;
        } else if (e[0] <= 4) {
            e += 8;
        } else {
            return fail(a, "MP table entry of unknown type %u", e[0]);
        }
    }
    return true;
}

bool rt_acpi_scan(struct rt_acpi *a)
{
    memset(a, 0, sizeof(*a));
    return check_acpi(a) && check_mp(a);
}
