/* The DSDT scan behind rt_virtio_discover, with no runtime dependency (memchr and memcmp only), so a
 * host test can run it on the AML evmm builds (tests/virtio_dsdt_test.cpp). */
#ifndef RT_VIRTIO_DSDT_H
#define RT_VIRTIO_DSDT_H

#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

struct rt_virtio_mmio {
    uint64_t base;
    uint32_t gsi;
};

/* Fills out[] with the window and GSI of each Device whose _HID is "LNRO0005", in table order, from the
 * AML between aml and end (a DSDT's body: after its 36-byte header). Returns how many (at most max);
 * *bad counts LNRO0005 devices whose _CRS lacked a Memory32Fixed or an Extended Interrupt. */
int rt_virtio_scan_aml(const uint8_t *aml, const uint8_t *end, struct rt_virtio_mmio *out, int max, int *bad);

#ifdef __cplusplus
}
#endif

#endif
