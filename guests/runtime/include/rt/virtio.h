/* The runtime's virtio side (virtio 1.2): virtio-mmio devices found in the DSDT, the version 2 MMIO
 * transport, split virtqueues as the driver sees them, and small blk, rng, console and net drivers.
 *
 * Rules:
 *   - Devices come from the DSDT, as Linux finds them: each Device whose _HID is "LNRO0005", its window
 *     from the Memory32Fixed and its GSI from the Extended Interrupt of _CRS. _STA is ignored (evmm
 *     reports 0 while the command line also carries the devices).
 *   - Requests are synchronous: a driver publishes one chain on a queue and waits for it, so a queue's
 *     descriptors are handed out from the start of its table for every chain (rx queues keep one
 *     buffer posted, on a queue of their own).
 *   - Completion is seen in the used ring; the device's interrupt (its GSI through the IOAPIC to
 *     RT_VEC_VIRTIO, once rt_virtio_irq_enable ran) wakes the waiting CPU, and a short timer recheck
 *     keeps a lost interrupt from hanging a wait.
 *   - Memory for rings comes from a small static pool in the runtime's image; buffers are the caller's
 *     (identity-mapped, so a pointer is its guest-physical address). */
#ifndef RT_VIRTIO_H
#define RT_VIRTIO_H

#include <stdbool.h>
#include <stdint.h>

#define RT_VIRTIO_MAX_DEVS 8
#define RT_VIRTIO_MAX_QUEUES 2
#define RT_VIRTQ_SIZE 16 /* queues are made at most this large */

/* Device IDs (§5) and the feature bits the runtime knows (§6, §2.7.5.3, §2.7.10). */
enum { RT_VIRTIO_NET = 1, RT_VIRTIO_BLK = 2, RT_VIRTIO_CONSOLE = 3, RT_VIRTIO_RNG = 4 };
#define RT_VIRTIO_F_INDIRECT_DESC (1ull << 28)
#define RT_VIRTIO_F_EVENT_IDX (1ull << 29)
#define RT_VIRTIO_F_VERSION_1 (1ull << 32)
#define RT_VIRTIO_BLK_F_RO (1ull << 5)
#define RT_VIRTIO_BLK_F_FLUSH (1ull << 9)
#define RT_VIRTIO_NET_F_MAC (1ull << 5)

/* Device status bits (§2.1). */
enum {
    RT_VIRTIO_S_ACKNOWLEDGE = 1,
    RT_VIRTIO_S_DRIVER = 2,
    RT_VIRTIO_S_DRIVER_OK = 4,
    RT_VIRTIO_S_FEATURES_OK = 8,
    RT_VIRTIO_S_NEEDS_RESET = 0x40,
    RT_VIRTIO_S_FAILED = 0x80,
};

/* Descriptor flags (§2.7.5). */
enum { RT_VIRTQ_F_NEXT = 1, RT_VIRTQ_F_WRITE = 2, RT_VIRTQ_F_INDIRECT = 4 };

struct rt_vq_desc {
    uint64_t addr;
    uint32_t len;
    uint16_t flags, next;
};
struct rt_vq_avail {
    uint16_t flags, idx;
    uint16_t ring[RT_VIRTQ_SIZE];
    uint16_t used_event;
};
struct rt_vq_used_elem {
    uint32_t id, len;
};
struct rt_vq_used {
    uint16_t flags, idx;
    struct rt_vq_used_elem ring[RT_VIRTQ_SIZE];
    uint16_t avail_event;
};

/* One split virtqueue. desc, avail and used point into one page of the pool. */
struct rt_vq {
    uint16_t index, size;
    volatile struct rt_vq_desc *desc;
    volatile struct rt_vq_avail *avail;
    volatile struct rt_vq_used *used;
    uint16_t last_used; /* the used index the driver has consumed up to */
};

struct rt_vdev {
    uint64_t base;
    uint32_t gsi;
    uint32_t id;       /* device ID, 0 when the window holds no virtio device */
    uint32_t version;  /* transport version: 2 is the only one the runtime drives */
    uint64_t offered;  /* device features */
    uint64_t features; /* negotiated */
    uint32_t nq;
    struct rt_vq q[RT_VIRTIO_MAX_QUEUES];
    volatile uint32_t irqs;       /* interrupts taken for this device */
    volatile uint32_t isr_seen;   /* InterruptStatus bits acknowledged so far */
    char error[80];               /* why rt_vdev_start failed */
};

struct rt_vbuf {
    const void *addr;
    uint32_t len;
    bool writable; /* device-writable */
};

/* Fills devs from the DSDT (finding it through rt_acpi_scan), reads each window's identity, and returns
 * how many Device(LNRO0005) objects there were (at most max). *error, if not NULL, gets the first problem. */
int rt_virtio_discover(struct rt_vdev *devs, int max, const char **error);
/* The first discovered device with this ID, or NULL. Discovery runs once, on first use. */
struct rt_vdev *rt_virtio_find(uint32_t id);
const char *rt_virtio_name(uint32_t id);

/* Device initialisation (§3.1.1): reset, ACKNOWLEDGE, DRIVER, features = want & offered | VERSION_1,
 * FEATURES_OK (checked), nq queues of at most RT_VIRTQ_SIZE, DRIVER_OK. false with d->error on failure. */
bool rt_vdev_start(struct rt_vdev *d, uint64_t want, uint32_t nq);
void rt_vdev_reset(struct rt_vdev *d);
uint32_t rt_vdev_status(const struct rt_vdev *d);
uint32_t rt_vdev_read32(const struct rt_vdev *d, uint32_t offset);
void rt_vdev_write32(const struct rt_vdev *d, uint32_t offset, uint32_t v);
uint8_t rt_vdev_config8(const struct rt_vdev *d, uint32_t offset);
uint32_t rt_vdev_config32(const struct rt_vdev *d, uint32_t offset);
/* Routes the device's GSI to RT_VEC_VIRTIO on this CPU; the handler acknowledges InterruptStatus. */
void rt_virtio_irq_enable(struct rt_vdev *d);

/* Writes the chain into descriptors 0..n-1 and puts head 0 on the available ring; notifies. */
void rt_vq_submit(struct rt_vdev *d, struct rt_vq *q, const struct rt_vbuf *bufs, uint32_t n);
/* Publishes head on the available ring (descriptors written by the caller) and notifies. */
void rt_vq_publish(struct rt_vdev *d, struct rt_vq *q, uint16_t head);
void rt_vq_notify(struct rt_vdev *d, struct rt_vq *q);
/* Takes the next used entry; false if none arrived within timeout_us. */
bool rt_vq_wait(struct rt_vq *q, uint32_t *id, uint32_t *len, uint32_t timeout_us);
bool rt_vq_has_used(const struct rt_vq *q);

/* ---- drivers (virtio_drivers.c); each starts its device on first use and returns false with a reason ---- */
/* Sector reads and writes of 512 bytes; flush; the device's ID string (20 bytes, NUL-padded). */
bool rt_vblk_capacity(uint64_t *sectors);
bool rt_vblk_read(uint64_t sector, void *buf, uint32_t count);
bool rt_vblk_write(uint64_t sector, const void *buf, uint32_t count);
bool rt_vblk_flush(void);
bool rt_vblk_get_id(char id[21]);
/* Bytes from virtio-rng; *got is how many the device wrote (the rate limit may shorten it). */
bool rt_vrng_read(void *buf, uint32_t len, uint32_t *got);
/* virtio-console port 0: write bytes; read what arrived within timeout_us (*got may be 0). */
bool rt_vcons_write(const void *buf, uint32_t len);
bool rt_vcons_read(void *buf, uint32_t cap, uint32_t *got, uint32_t timeout_us);
/* virtio-net: one frame out; one frame in within timeout_us (the 12-byte virtio_net_hdr stripped). */
bool rt_vnet_mac(uint8_t mac[6]);
bool rt_vnet_send(const void *frame, uint32_t len);
bool rt_vnet_recv(void *frame, uint32_t cap, uint32_t *got, uint32_t timeout_us);
/* The last driver error, "" when none. */
const char *rt_virtio_error(void);

#endif
