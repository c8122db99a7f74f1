/* Small synchronous drivers for virtio-blk (§5.2), virtio-rng (§5.4), virtio-console (§5.3, port 0 only,
 * no MULTIPORT) and virtio-net (§5.1, one queue pair, no offloads). Each starts its device on first use,
 * with its interrupt routed, and waits for every request it makes. */
#include "internal.h"
#include "rt/virtio.h"

#define TIMEOUT_US 2000000u

static char last_error[96];
const char *rt_virtio_error(void) { return last_error; }

static bool fail(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
static bool fail(const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    rt_vsnprintf(last_error, sizeof(last_error), fmt, ap);
    va_end(ap);
    return false;
}

/* The started device of this type, or NULL with last_error set. */
static struct rt_vdev *started(uint32_t id, uint64_t want, uint32_t nq, bool *done)
{
    struct rt_vdev *d = rt_virtio_find(id);
    if (!d) {
        fail("no virtio-%s device in the DSDT", rt_virtio_name(id));
        return NULL;
    }
    if (!*done) {
        if (!rt_vdev_start(d, want, nq)) {
            fail("%s", d->error);
            return NULL;
        }
        rt_virtio_irq_enable(d);
        *done = true;
    }
    return d;
}

/* Submits a chain on queue q and waits for it; *len gets the used length. */
static bool roundtrip(struct rt_vdev *d, uint32_t q, const struct rt_vbuf *bufs, uint32_t n, uint32_t *len)
{
    rt_vq_submit(d, &d->q[q], bufs, n);
    if (!rt_vq_wait(&d->q[q], NULL, len, TIMEOUT_US))
        return fail("virtio-%s: no answer on queue %u within %u ms (status 0x%x)", rt_virtio_name(d->id), q,
                    TIMEOUT_US / 1000, rt_vdev_status(d));
    return true;
}

/* ---- blk ---- */
enum { BLK_T_IN = 0, BLK_T_OUT = 1, BLK_T_FLUSH = 4, BLK_T_GET_ID = 8 };
struct blk_header {
    uint32_t type, reserved;
    uint64_t sector;
};
static bool blk_started;

static struct rt_vdev *blk(void) { return started(RT_VIRTIO_BLK, RT_VIRTIO_BLK_F_FLUSH | RT_VIRTIO_BLK_F_RO, 1, &blk_started); }

static bool blk_request(uint32_t type, uint64_t sector, const void *data, uint32_t len, bool device_writes)
{
    struct rt_vdev *d = blk();
    if (!d)
        return false;
    static struct blk_header h;
    static volatile uint8_t status;
    h = (struct blk_header){type, 0, sector};
    status = 0xff;
    struct rt_vbuf bufs[3] = {{&h, sizeof(h), false}, {data, len, device_writes}, {(const void *)&status, 1, true}};
    uint32_t used;
    bool ok = len ? roundtrip(d, 0, bufs, 3, &used) : roundtrip(d, 0, (struct rt_vbuf[]){bufs[0], bufs[2]}, 2, &used);
    if (!ok)
        return false;
    if (status != 0)
        return fail("virtio-blk: request type %u sector %lu: status %u", type, sector, status);
    return true;
}

bool rt_vblk_capacity(uint64_t *sectors)
{
    struct rt_vdev *d = blk();
    if (!d)
        return false;
    *sectors = rt_vdev_config32(d, 0) | (uint64_t)rt_vdev_config32(d, 4) << 32;
    return true;
}

bool rt_vblk_read(uint64_t sector, void *buf, uint32_t count)
{
    return blk_request(BLK_T_IN, sector, buf, count * 512, true);
}

bool rt_vblk_write(uint64_t sector, const void *buf, uint32_t count)
{
    return blk_request(BLK_T_OUT, sector, buf, count * 512, false);
}

bool rt_vblk_flush(void)
{
    struct rt_vdev *d = blk();
    if (!d)
        return false;
    if (!(d->features & RT_VIRTIO_BLK_F_FLUSH))
        return fail("virtio-blk: VIRTIO_BLK_F_FLUSH not offered");
    return blk_request(BLK_T_FLUSH, 0, NULL, 0, false);
}

bool rt_vblk_get_id(char id[21])
{
    memset(id, 0, 21);
    return blk_request(BLK_T_GET_ID, 0, id, 20, true);
}

/* ---- rng ---- */
static bool rng_started;

bool rt_vrng_read(void *buf, uint32_t len, uint32_t *got)
{
    struct rt_vdev *d = started(RT_VIRTIO_RNG, 0, 1, &rng_started);
    if (!d)
        return false;
    struct rt_vbuf b = {buf, len, true};
    return roundtrip(d, 0, &b, 1, got);
}

/* ---- console: queue 0 receives, queue 1 transmits (port 0) ---- */
static bool cons_started, cons_rx_posted;
static uint8_t cons_rx[256];

static struct rt_vdev *cons(void) { return started(RT_VIRTIO_CONSOLE, 0, 2, &cons_started); }

bool rt_vcons_write(const void *buf, uint32_t len)
{
    struct rt_vdev *d = cons();
    if (!d)
        return false;
    struct rt_vbuf b = {buf, len, false};
    return roundtrip(d, 1, &b, 1, NULL);
}

bool rt_vcons_read(void *buf, uint32_t cap, uint32_t *got, uint32_t timeout_us)
{
    struct rt_vdev *d = cons();
    *got = 0;
    if (!d)
        return false;
    struct rt_vq *q = &d->q[0];
    if (!cons_rx_posted) {
        struct rt_vbuf b = {cons_rx, sizeof(cons_rx), true};
        rt_vq_submit(d, q, &b, 1);
        cons_rx_posted = true;
    }
    uint32_t len;
    if (!rt_vq_wait(q, NULL, &len, timeout_us))
        return true; /* nothing arrived: the buffer stays posted */
    cons_rx_posted = false;
    if (len > sizeof(cons_rx))
        return fail("virtio-console: used length %u beyond the %u-byte buffer", len, (uint32_t)sizeof(cons_rx));
    *got = len < cap ? len : cap;
    memcpy(buf, cons_rx, *got);
    return true;
}

/* ---- net: queue 0 receives, queue 1 transmits; with VERSION_1 the header is 12 bytes (§5.1.6) ---- */
#define NET_HDR 12
#define NET_FRAME 1514
static bool net_started, net_rx_posted;
static uint8_t net_tx[NET_HDR + NET_FRAME], net_rx[NET_HDR + NET_FRAME];

static struct rt_vdev *net(void) { return started(RT_VIRTIO_NET, RT_VIRTIO_NET_F_MAC, 2, &net_started); }

bool rt_vnet_mac(uint8_t mac[6])
{
    struct rt_vdev *d = net();
    if (!d)
        return false;
    if (!(d->features & RT_VIRTIO_NET_F_MAC))
        return fail("virtio-net: no VIRTIO_NET_F_MAC");
    for (uint32_t i = 0; i < 6; i++)
        mac[i] = rt_vdev_config8(d, i);
    return true;
}

bool rt_vnet_send(const void *frame, uint32_t len)
{
    struct rt_vdev *d = net();
    if (!d)
        return false;
    if (len > NET_FRAME)
        return fail("virtio-net: a %u-byte frame is larger than %u", len, NET_FRAME);
    memset(net_tx, 0, NET_HDR);
    memcpy(net_tx + NET_HDR, frame, len);
    struct rt_vbuf b = {net_tx, NET_HDR + len, false};
    return roundtrip(d, 1, &b, 1, NULL);
}

bool rt_vnet_recv(void *frame, uint32_t cap, uint32_t *got, uint32_t timeout_us)
{
    struct rt_vdev *d = net();
    *got = 0;
    if (!d)
        return false;
    struct rt_vq *q = &d->q[0];
    if (!net_rx_posted) {
        struct rt_vbuf b = {net_rx, sizeof(net_rx), true};
        rt_vq_submit(d, q, &b, 1);
        net_rx_posted = true;
    }
    uint32_t len;
    if (!rt_vq_wait(q, NULL, &len, timeout_us))
        return true;
    net_rx_posted = false;
    if (len < NET_HDR || len > sizeof(net_rx))
        return fail("virtio-net: used length %u for a %u-byte buffer", len, (uint32_t)sizeof(net_rx));
    len -= NET_HDR;
    *got = len < cap ? len : cap;
    memcpy(frame, net_rx + NET_HDR, *got);
    return true;
}
