/* virtio-mmio devices from the DSDT (ACPI 6.5 §19.2.5 DefDevice, §6.4 resource descriptors): each
 * Device(...) whose _HID is the string "LNRO0005", as Linux's virtio_mmio driver matches it, gives its
 * window (Memory32Fixed, §6.4.3.4) and its GSI (Extended Interrupt, §6.4.3.6) in _CRS. */
#include <stdbool.h>
#include <stddef.h>

#include "rt/virtio_dsdt.h"

#ifdef RT_HOST_TEST
#include <string.h>
#else
#include "rt/rt.h"
#endif

enum {
    AML_EXT_PREFIX = 0x5b,
    AML_DEVICE_OP = 0x82,
    AML_BUFFER_OP = 0x11,
    AML_BYTE_PREFIX = 0x0a,
    AML_WORD_PREFIX = 0x0b,
    AML_DWORD_PREFIX = 0x0c,
    RES_MEMORY32_FIXED = 0x86,
    RES_EXT_INTERRUPT = 0x89,
    RES_END_TAG = 0x79,
};

static const uint8_t hid_string[] = {0x0d, 'L', 'N', 'R', 'O', '0', '0', '0', '5', 0};
static const uint8_t crs_name[] = {'_', 'C', 'R', 'S', AML_BUFFER_OP};

/* §20.2.4 PkgLength: the encoded length (which counts its own bytes) and how many bytes encode it;
 * 0 when the encoding does not fit before end (p may be end itself: a DeviceOp the table ends with). */
static uint32_t pkg_length(const uint8_t *p, const uint8_t *end, uint32_t *bytes)
{
    *bytes = 1;
    if (p >= end)
        return 0;
    uint32_t follow = p[0] >> 6;
    *bytes = follow + 1;
    if ((size_t)(end - p) <= follow)
        return 0;
    if (!follow)
        return p[0] & 0x3f;
    uint32_t len = p[0] & 0x0f;
    for (uint32_t i = 1; i <= follow; i++)
        len |= (uint32_t)p[i] << (4 + 8 * (i - 1));
    return len;
}

static const uint8_t *find_bytes(const uint8_t *p, const uint8_t *end, const uint8_t *pat, size_t n)
{
    while (p + n <= end) {
        const uint8_t *hit = memchr(p, pat[0], (size_t)(end - p) - n + 1);
        if (!hit)
            return NULL;
        if (!memcmp(hit, pat, n))
            return hit;
        p = hit + 1;
    }
    return NULL;
}

static uint32_t rd32(const uint8_t *p) { return (uint32_t)p[0] | (uint32_t)p[1] << 8 | (uint32_t)p[2] << 16 | (uint32_t)p[3] << 24; }

/* Reads base and GSI from the resource template of a _CRS buffer: p at the buffer's PkgLength. */
static bool parse_crs(const uint8_t *p, const uint8_t *end, struct rt_virtio_mmio *d)
{
    uint32_t nbytes, len = pkg_length(p, end, &nbytes);
    if (!len || len > (size_t)(end - p))
        return false;
    end = p + len;
    p += nbytes;
    /* BufferSize: a byte, word or dword constant (what ASL compilers and evmm emit). */
    if (p >= end)
        return false;
    size_t size_bytes;
    if (*p == AML_BYTE_PREFIX)
        size_bytes = 2;
    else if (*p == AML_WORD_PREFIX)
        size_bytes = 3;
    else if (*p == AML_DWORD_PREFIX)
        size_bytes = 5;
    else
        return false;
    if ((size_t)(end - p) < size_bytes)
        return false;
    p += size_bytes;
    bool base = false, gsi = false;
    while (p < end && *p != RES_END_TAG) {
        if (!(*p & 0x80)) { /* small item: length in bits 0-2 */
            if ((size_t)(end - p) <= (size_t)(*p & 7))
                return false;
            p += 1 + (*p & 7);
            continue;
        }
        if (end - p < 3)
            return false;
        uint32_t n = (uint32_t)p[1] | (uint32_t)p[2] << 8;
        if ((size_t)(end - p) - 3 < n)
            return false;
        if (p[0] == RES_MEMORY32_FIXED && n >= 9) {
            d->base = rd32(p + 4);
            base = true;
        } else if (p[0] == RES_EXT_INTERRUPT && n >= 6 && p[4] >= 1) {
            d->gsi = rd32(p + 5);
            gsi = true;
        }
        p += 3 + n;
    }
    return base && gsi;
}

/* Scans every DeviceOp of the table; the _HID and _CRS looked at are those before the next DeviceOp,
 * so a nested device's names are not taken for its parent's. */
int rt_virtio_scan_aml(const uint8_t *aml, const uint8_t *end, struct rt_virtio_mmio *out, int max, int *bad)
{
    static const uint8_t device_op[] = {AML_EXT_PREFIX, AML_DEVICE_OP};
    int n = 0;
    *bad = 0;
    for (const uint8_t *p = aml; n < max && (p = find_bytes(p, end, device_op, 2)); p += 2) {
        uint32_t nbytes, len = pkg_length(p + 2, end, &nbytes);
        if (!len || len > (size_t)(end - (p + 2)))
            continue; /* a 0x5B 0x82 inside some other object's data, or a table cut short */
        const uint8_t *dev_end = p + 2 + len;
        const uint8_t *next = find_bytes(p + 2, dev_end, device_op, 2);
        const uint8_t *limit = next ? next : dev_end;
        if (!find_bytes(p + 2, limit, hid_string, sizeof(hid_string)))
            continue;
        const uint8_t *crs = find_bytes(p + 2, limit, crs_name, sizeof(crs_name));
        struct rt_virtio_mmio d = {0, 0};
        if (!crs || !parse_crs(crs + sizeof(crs_name), limit, &d)) {
            ++*bad;
            continue;
        }
        out[n++] = d;
    }
    return n;
}
