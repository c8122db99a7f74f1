/* The virtio-mmio version 2 transport (virtio 1.2 §4.2) and split virtqueues (§2.7), driver side. */
#include "internal.h"
#include "rt/virtio.h"

/* Register offsets (§4.2.2). */
enum {
    R_DEVICE_FEATURES = 0x010,
    R_DEVICE_FEATURES_SEL = 0x014,
    R_DRIVER_FEATURES = 0x020,
    R_DRIVER_FEATURES_SEL = 0x024,
    R_QUEUE_SEL = 0x030,
    R_QUEUE_NUM_MAX = 0x034,
    R_QUEUE_NUM = 0x038,
    R_QUEUE_READY = 0x044,
    R_QUEUE_NOTIFY = 0x050,
    R_INTERRUPT_STATUS = 0x060,
    R_INTERRUPT_ACK = 0x064,
    R_STATUS = 0x070,
    R_QUEUE_DESC = 0x080,
    R_QUEUE_DRIVER = 0x090,
    R_QUEUE_DEVICE = 0x0a0,
    R_CONFIG = 0x100,
};

#define barrier() __asm__ volatile("" ::: "memory")

/* One page per queue: descriptors at 0, the available ring at 0x400, the used ring at 0x800. */
#define POOL_PAGES (RT_VIRTIO_MAX_DEVS * RT_VIRTIO_MAX_QUEUES)
static uint8_t pool[POOL_PAGES][4096] __attribute__((aligned(4096)));
static uint32_t pool_used;

static struct rt_vdev devs[RT_VIRTIO_MAX_DEVS];
static int n_devs = -1;

uint32_t rt_vdev_read32(const struct rt_vdev *d, uint32_t offset) { return mmio_read32(d->base + offset); }
void rt_vdev_write32(const struct rt_vdev *d, uint32_t offset, uint32_t v) { mmio_write32(d->base + offset, v); }
uint32_t rt_vdev_status(const struct rt_vdev *d) { return rt_vdev_read32(d, R_STATUS); }
uint8_t rt_vdev_config8(const struct rt_vdev *d, uint32_t offset) { return *(volatile uint8_t *)phys_ptr(d->base + R_CONFIG + offset); }
uint32_t rt_vdev_config32(const struct rt_vdev *d, uint32_t offset) { return rt_vdev_read32(d, R_CONFIG + offset); }

const char *rt_virtio_name(uint32_t id)
{
    static const char *const names[] = {"none", "net", "blk", "console", "rng"};
    return id < 5 ? names[id] : "other";
}

struct rt_vdev *rt_virtio_find(uint32_t id)
{
    if (n_devs < 0)
        n_devs = rt_virtio_discover(devs, RT_VIRTIO_MAX_DEVS, NULL);
    for (int i = 0; i < n_devs; i++)
        if (devs[i].id == id && devs[i].version == 2)
            return &devs[i];
    return NULL;
}

static bool fail(struct rt_vdev *d, const char *why, uint64_t value)
{
    rt_snprintf(d->error, sizeof(d->error), "virtio-%s at 0x%lx: %s 0x%lx", rt_virtio_name(d->id), d->base, why, value);
    rt_vdev_write32(d, R_STATUS, rt_vdev_status(d) | RT_VIRTIO_S_FAILED);
    return false;
}

void rt_vdev_reset(struct rt_vdev *d)
{
    rt_vdev_write32(d, R_STATUS, 0);
    /* §4.2.3.1: reset is done when Status reads 0 again. */
    for (int i = 0; i < 1000 && rt_vdev_status(d); i++)
        cpu_relax();
}

static void write64(const struct rt_vdev *d, uint32_t reg, uint64_t v)
{
    rt_vdev_write32(d, reg, (uint32_t)v);
    rt_vdev_write32(d, reg + 4, (uint32_t)(v >> 32));
}

static bool setup_queue(struct rt_vdev *d, uint16_t index)
{
    struct rt_vq *q = &d->q[index];
    rt_vdev_write32(d, R_QUEUE_SEL, index);
    if (rt_vdev_read32(d, R_QUEUE_READY))
        return fail(d, "queue already ready", index);
    uint32_t max = rt_vdev_read32(d, R_QUEUE_NUM_MAX);
    if (!max)
        return fail(d, "no queue", index);
    uint16_t size = RT_VIRTQ_SIZE;
    while (size > max) /* a power of two no larger than the device's maximum (§2.7) */
        size >>= 1;
    /* A restarted device takes its queues' old pages again. */
    if (!q->desc) {
        if (pool_used == POOL_PAGES)
            return fail(d, "out of ring pages for queue", index);
        uint8_t *page = pool[pool_used++];
        q->desc = (volatile struct rt_vq_desc *)page;
        q->avail = (volatile struct rt_vq_avail *)(page + 0x400);
        q->used = (volatile struct rt_vq_used *)(page + 0x800);
    }
    memset((void *)q->desc, 0, 4096);
    q->index = index;
    q->size = size;
    q->last_used = 0;
    rt_vdev_write32(d, R_QUEUE_NUM, size);
    write64(d, R_QUEUE_DESC, (uint64_t)(uintptr_t)q->desc);
    write64(d, R_QUEUE_DRIVER, (uint64_t)(uintptr_t)q->avail);
    write64(d, R_QUEUE_DEVICE, (uint64_t)(uintptr_t)q->used);
    rt_vdev_write32(d, R_QUEUE_READY, 1);
    return true;
}

bool rt_vdev_start(struct rt_vdev *d, uint64_t want, uint32_t nq)
{
    d->error[0] = '\0';
    if (d->version != 2)
        return fail(d, "transport version is not 2 but", d->version);
    if (nq > RT_VIRTIO_MAX_QUEUES)
        return fail(d, "too many queues asked for:", nq);
    rt_vdev_reset(d);
    rt_vdev_write32(d, R_STATUS, RT_VIRTIO_S_ACKNOWLEDGE);
    rt_vdev_write32(d, R_STATUS, RT_VIRTIO_S_ACKNOWLEDGE | RT_VIRTIO_S_DRIVER);
    rt_vdev_write32(d, R_DEVICE_FEATURES_SEL, 0);
    uint64_t offered = rt_vdev_read32(d, R_DEVICE_FEATURES);
    rt_vdev_write32(d, R_DEVICE_FEATURES_SEL, 1);
    offered |= (uint64_t)rt_vdev_read32(d, R_DEVICE_FEATURES) << 32;
    d->offered = offered;
    if (!(offered & RT_VIRTIO_F_VERSION_1))
        return fail(d, "no VIRTIO_F_VERSION_1 in features", offered);
    d->features = (want & offered) | RT_VIRTIO_F_VERSION_1;
    rt_vdev_write32(d, R_DRIVER_FEATURES_SEL, 0);
    rt_vdev_write32(d, R_DRIVER_FEATURES, (uint32_t)d->features);
    rt_vdev_write32(d, R_DRIVER_FEATURES_SEL, 1);
    rt_vdev_write32(d, R_DRIVER_FEATURES, (uint32_t)(d->features >> 32));
    uint32_t s = RT_VIRTIO_S_ACKNOWLEDGE | RT_VIRTIO_S_DRIVER | RT_VIRTIO_S_FEATURES_OK;
    rt_vdev_write32(d, R_STATUS, s);
    /* §3.1.1 step 6: the device keeps FEATURES_OK only if it accepts the subset. */
    if (!(rt_vdev_status(d) & RT_VIRTIO_S_FEATURES_OK))
        return fail(d, "device refused features", d->features);
    for (uint32_t i = 0; i < nq; i++)
        if (!setup_queue(d, (uint16_t)i))
            return false;
    d->nq = nq;
    rt_vdev_write32(d, R_STATUS, s | RT_VIRTIO_S_DRIVER_OK);
    uint32_t now = rt_vdev_status(d);
    if (now & RT_VIRTIO_S_NEEDS_RESET)
        return fail(d, "DEVICE_NEEDS_RESET after DRIVER_OK, status", now);
    return true;
}

void rt_vq_notify(struct rt_vdev *d, struct rt_vq *q)
{
    barrier();
    rt_vdev_write32(d, R_QUEUE_NOTIFY, q->index);
}

void rt_vq_publish(struct rt_vdev *d, struct rt_vq *q, uint16_t head)
{
    uint16_t idx = q->avail->idx;
    q->avail->ring[idx % q->size] = head;
    barrier(); /* x86 keeps stores in order: the entry is visible before the index (§2.7.13) */
    q->avail->idx = (uint16_t)(idx + 1);
    rt_vq_notify(d, q);
}

void rt_vq_submit(struct rt_vdev *d, struct rt_vq *q, const struct rt_vbuf *bufs, uint32_t n)
{
    for (uint32_t i = 0; i < n; i++) {
        q->desc[i].addr = (uint64_t)(uintptr_t)bufs[i].addr;
        q->desc[i].len = bufs[i].len;
        q->desc[i].flags = (uint16_t)((bufs[i].writable ? RT_VIRTQ_F_WRITE : 0) | (i + 1 < n ? RT_VIRTQ_F_NEXT : 0));
        q->desc[i].next = (uint16_t)(i + 1 < n ? i + 1 : 0);
    }
    rt_vq_publish(d, q, 0);
}

bool rt_vq_has_used(const struct rt_vq *q) { return q->used->idx != q->last_used; }

static bool used_ready(void *arg) { return rt_vq_has_used(arg); }

bool rt_vq_wait(struct rt_vq *q, uint32_t *id, uint32_t *len, uint32_t timeout_us)
{
    /* Sleep until the interrupt; recheck every 2 ms in case none was routed or one was lost. Other
     * interrupts end a sleep early, so the deadline is kept by the TSC. */
    uint64_t khz = rt_tsc_khz() ? rt_tsc_khz() : 1000000; /* unknown: assume 1 GHz */
    uint64_t start = rdtsc(), limit = (uint64_t)timeout_us * khz / 1000;
    while (!rt_vq_has_used(q)) {
        if (rdtsc() - start >= limit)
            return false;
        rt_wait(used_ready, q, 2000);
    }
    barrier();
    volatile struct rt_vq_used_elem *e = &q->used->ring[q->last_used % q->size];
    if (id)
        *id = e->id;
    if (len)
        *len = e->len;
    q->last_used++;
    return true;
}

static void on_virtio_irq(struct rt_frame *f)
{
    (void)f;
    for (int i = 0; i < n_devs; i++) {
        struct rt_vdev *d = &devs[i];
        if (!d->gsi || !d->id)
            continue;
        uint32_t st = rt_vdev_read32(d, R_INTERRUPT_STATUS);
        if (!st)
            continue;
        rt_vdev_write32(d, R_INTERRUPT_ACK, st);
        d->isr_seen |= st;
        d->irqs++;
    }
}

void rt_virtio_irq_enable(struct rt_vdev *d)
{
    rt_set_irq_handler(RT_VEC_VIRTIO, on_virtio_irq);
    rt_ioapic_route(d->gsi, RT_VEC_VIRTIO, rt_lapic_id());
}
