/* virtio-mmio devices from the DSDT the FADT names (rt_acpi_scan), identified through their windows. */
#include "internal.h"
#include "rt/virtio.h"
#include "rt/virtio_dsdt.h"

int rt_virtio_discover(struct rt_vdev *devs, int max, const char **error)
{
    static struct rt_acpi acpi;
    static struct rt_virtio_mmio found[RT_VIRTIO_MAX_DEVS];
    if (error)
        *error = NULL;
    if (!rt_acpi_scan(&acpi) && !acpi.dsdt) {
        if (error)
            *error = "no DSDT (ACPI tables not found)";
        return 0;
    }
    const uint8_t *dsdt = phys_ptr(acpi.dsdt);
    uint32_t len = *(const uint32_t *)(dsdt + 4);
    int bad;
    if (max > RT_VIRTIO_MAX_DEVS)
        max = RT_VIRTIO_MAX_DEVS;
    int n = rt_virtio_scan_aml(dsdt + 36, dsdt + len, found, max, &bad);
    if (bad && error)
        *error = "an LNRO0005 device without a Memory32Fixed and an Extended Interrupt in _CRS";
    for (int i = 0; i < n; i++) {
        struct rt_vdev *d = &devs[i];
        memset(d, 0, sizeof(*d));
        d->base = found[i].base;
        d->gsi = found[i].gsi;
        if (rt_vdev_read32(d, 0x000) != 0x74726976) /* "virt" */
            continue;
        d->version = rt_vdev_read32(d, 0x004);
        d->id = rt_vdev_read32(d, 0x008);
    }
    return n;
}
