/* virtio actions: `virtio` finds the devices in the DSDT and drives each one the runtime has a driver
 * for; `vqbad=<kind>` puts one malformed chain of that kind on virtio-rng's queue and checks the device
 * refused it and still serves good requests there and on another device (virtio 1.2 §2.7). */
#include "testprog.h"
#include "rt/virtio.h"

#define FAIL(...) tp_fail(RT_EXIT_VIRTIO_FAILED, __VA_ARGS__)

static void check(bool ok, const char *what)
{
    if (!ok)
        FAIL("%s: %s", what, rt_virtio_error());
}

static bool rng_interrupted(void *arg)
{
    return ((struct rt_vdev *)arg)->irqs != 0;
}

static void drive_rng(void)
{
    static uint8_t buf[64];
    uint32_t got = 0;
    check(rt_vrng_read(buf, sizeof(buf), &got), "virtio-rng");
    uint32_t distinct = 0;
    for (uint32_t i = 0; i < got; i++) {
        bool seen = false;
        for (uint32_t j = 0; j < i && !seen; j++)
            seen = buf[j] == buf[i];
        distinct += !seen;
    }
    /* The device may have filled the buffer before the driver slept, leaving its interrupt pending
     * with interrupts off: let it land (the count stays 0 if it never comes). */
    struct rt_vdev *d = rt_virtio_find(RT_VIRTIO_RNG);
    rt_wait(rng_interrupted, d, 100000);
    rt_printf("virtio-rng: %u bytes, %u distinct, %u interrupts\n", got, distinct, d->irqs);
}

static void drive_blk(void)
{
    static uint8_t out[1024], in[1024];
    uint64_t sectors;
    char id[21];
    check(rt_vblk_capacity(&sectors), "virtio-blk capacity");
    check(rt_vblk_get_id(id), "virtio-blk get-id");
    if (sectors < 4)
        FAIL("virtio-blk: %lu sectors, too small to test", sectors);
    for (uint32_t i = 0; i < sizeof(out); i++)
        out[i] = (uint8_t)(i * 7 + 3);
    check(rt_vblk_write(2, out, 2), "virtio-blk write");
    check(rt_vblk_read(2, in, 2), "virtio-blk read");
    bool same = !memcmp(in, out, sizeof(in));
    bool flushed = rt_vblk_flush();
    rt_printf("virtio-blk: %lu sectors, id \"%s\", 2 sectors written and read back %s, flush %s\n", sectors, id,
              same ? "equal" : "DIFFERENT", flushed ? "ok" : rt_virtio_error());
    if (!same)
        FAIL("virtio-blk: read back differs");
}

static void drive_console(void)
{
    static const char line[] = "hello from the guest through virtio-console\n";
    check(rt_vcons_write(line, sizeof(line) - 1), "virtio-console");
    rt_printf("virtio-console: wrote %u bytes\n", (uint32_t)sizeof(line) - 1);
}

static void drive_net(void)
{
    uint8_t mac[6] = {0};
    static uint8_t frame[60];
    bool have_mac = rt_vnet_mac(mac);
    memset(frame, 0xff, 6); /* broadcast, from our MAC, an experimental EtherType (IEEE 802 0x88b5) */
    memcpy(frame + 6, mac, 6);
    frame[12] = 0x88;
    frame[13] = 0xb5;
    check(rt_vnet_send(frame, sizeof(frame)), "virtio-net send");
    rt_printf("virtio-net: mac %02x:%02x:%02x:%02x:%02x:%02x%s, sent a %u-byte frame\n", mac[0], mac[1], mac[2], mac[3],
              mac[4], mac[5], have_mac ? "" : " (none offered)", (uint32_t)sizeof(frame));
}

void action_virtio(void)
{
    static struct rt_vdev devs[RT_VIRTIO_MAX_DEVS];
    const char *error;
    int n = rt_virtio_discover(devs, RT_VIRTIO_MAX_DEVS, &error);
    if (error)
        FAIL("virtio: %s", error);
    rt_printf("virtio: %d devices in the DSDT\n", n);
    for (int i = 0; i < n; i++)
        rt_printf("virtio %d: %s at 0x%lx gsi %u version %u\n", i, rt_virtio_name(devs[i].id), devs[i].base,
                  devs[i].gsi, devs[i].version);
    if (rt_virtio_find(RT_VIRTIO_RNG))
        drive_rng();
    if (rt_virtio_find(RT_VIRTIO_BLK))
        drive_blk();
    if (rt_virtio_find(RT_VIRTIO_CONSOLE))
        drive_console();
    if (rt_virtio_find(RT_VIRTIO_NET))
        drive_net();
}

/* The console driver's receive path: what arrives on port 0 until a newline (or 2 s without input). */
void action_consread(void)
{
    static char line[128];
    uint32_t len = 0;
    while (len < sizeof(line) - 1 && (!len || line[len - 1] != '\n')) {
        uint32_t got;
        check(rt_vcons_read(line + len, (uint32_t)(sizeof(line) - 1 - len), &got, 2000000), "consread");
        if (!got)
            break;
        len += got;
    }
    while (len && (line[len - 1] == '\n' || line[len - 1] == '\r'))
        len--;
    line[len] = '\0';
    rt_printf("consread: got %s\n", line);
}

/* An ARP request for 10.0.2.2 from 10.0.2.15 (QEMU user networking's gateway and guest addresses),
 * then the frames that come back within 2 s until the reply: the receive path of the net driver. */
void action_netarp(void)
{
    static uint8_t req[60], in[1514];
    static const uint8_t spa[4] = {10, 0, 2, 15}, tpa[4] = {10, 0, 2, 2};
    uint8_t mac[6];
    if (!rt_vnet_mac(mac))
        FAIL("netarp: %s", rt_virtio_error());
    memset(req, 0xff, 6);
    memcpy(req + 6, mac, 6);
    static const uint8_t arp[] = {0x08, 0x06, 0, 1, 0x08, 0x00, 6, 4, 0, 1}; /* RFC 826, request */
    memcpy(req + 12, arp, sizeof(arp));
    memcpy(req + 22, mac, 6);
    memcpy(req + 28, spa, 4);
    memcpy(req + 38, tpa, 4);
    check(rt_vnet_send(req, sizeof(req)), "netarp send");
    for (int frames = 0; frames < 8; frames++) {
        uint32_t got;
        check(rt_vnet_recv(in, sizeof(in), &got, 2000000), "netarp receive");
        if (!got)
            FAIL("netarp: no frame within 2 s (%d others)", frames);
        if (got >= 42 && in[12] == 0x08 && in[13] == 0x06 && in[21] == 2 && !memcmp(in + 28, tpa, 4)) {
            rt_printf("netarp: 10.0.2.2 is at %02x:%02x:%02x:%02x:%02x:%02x (%u-byte reply, %d frames before)\n", in[22],
                      in[23], in[24], in[25], in[26], in[27], got, frames);
            return;
        }
    }
    FAIL("netarp: no ARP reply among 8 frames");
}

/* ---- vqbad ---- */

#define MAX_INDIRECT 1024 /* the device's longest indirect table (devices/virtio/queue.h kMaxIndirect) */
static struct rt_vq_desc table[MAX_INDIRECT + 1] __attribute__((aligned(16)));
static uint8_t buf[64];

static uint64_t addr(const void *p) { return (uint64_t)(uintptr_t)p; }

static void set(volatile struct rt_vq_desc *d, uint64_t a, uint32_t len, uint16_t flags, uint16_t next)
{
    d->addr = a;
    d->len = len;
    d->flags = flags;
    d->next = next;
}

/* The top half of the largest usable RAM range below 4 GiB (for chains that add up past 4 GiB): away
 * from this image at 1 MiB, should a device ever write into a chain it ought to refuse. */
static bool big_ram(uint64_t *start, uint32_t *len)
{
    uint64_t best = 0, top = 0;
    for (uint32_t i = 0; i < rt_boot.n_mmap; i++) {
        const struct rt_mmap_entry *e = &rt_boot.mmap[i];
        uint64_t end = e->end < (1ull << 32) ? e->end : (1ull << 32);
        if (e->type != 1 || end <= e->start || end - e->start <= best)
            continue;
        best = end - e->start;
        top = end;
    }
    best = (best / 2) & ~0xfffffull;
    if (best > 0x80000000ull)
        best = 0x80000000ull;
    *len = (uint32_t)best;
    *start = top - best;
    return best >= (4ull << 20); /* 1024 of them reach 4 GiB */
}

/* Writes the bad chain of one kind on q, head 0 unless it says otherwise; returns the head published. */
static uint16_t write_bad(const char *kind, volatile struct rt_vq_desc *d, uint16_t size)
{
    const uint16_t W = RT_VIRTQ_F_WRITE, N = RT_VIRTQ_F_NEXT, I = RT_VIRTQ_F_INDIRECT;
    if (!strcmp(kind, "head"))
        return size; /* the available entry names no descriptor */
    if (!strcmp(kind, "next"))
        set(&d[0], addr(buf), 16, W | N, size);
    else if (!strcmp(kind, "loop")) {
        set(&d[0], addr(buf), 16, W | N, 1);
        set(&d[1], addr(buf + 16), 16, W | N, 0);
    } else if (!strcmp(kind, "long")) /* one more than the device walks in a table */
        set(&d[0], addr(table), (MAX_INDIRECT + 1) * 16, I, 0);
    else if (!strcmp(kind, "large")) {
        uint64_t start = 0;
        uint32_t len = 0;
        if (!big_ram(&start, &len))
            FAIL("vqbad: no 4 MiB of RAM in one range for the large chain");
        uint32_t n = (uint32_t)((1ull << 32) / len + 1);
        for (uint32_t i = 0; i < n; i++)
            set(&table[i], start, len, W | (i + 1 < n ? N : 0), (uint16_t)(i + 1));
        set(&d[0], addr(table), n * 16, I, 0);
    } else if (!strcmp(kind, "outside"))
        set(&d[0], 1ull << 46, 16, W, 0);
    else if (!strcmp(kind, "direction")) {
        set(&d[0], addr(buf), 16, W | N, 1);
        set(&d[1], addr(buf + 16), 16, 0, 0);
    } else if (!strcmp(kind, "indirect-off") || !strcmp(kind, "indirect-len") || !strcmp(kind, "nested")) {
        set(&table[0], addr(buf), 16, !strcmp(kind, "nested") ? I : W, 0);
        set(&d[0], addr(table), !strcmp(kind, "indirect-len") ? 24 : 16, I, 0);
    } else if (!strcmp(kind, "indirect-next")) {
        set(&table[0], addr(buf), 16, W, 0);
        set(&d[0], addr(table), 16, I | N, 1);
        set(&d[1], addr(buf), 16, W, 0);
    } else
        FAIL("vqbad: unknown kind '%s'", kind);
    return 0;
}

/* One good rng request on the device's queue 0; the bytes the device wrote. */
static uint32_t good_request(struct rt_vdev *d, const char *when)
{
    struct rt_vbuf b = {buf, 32, true};
    memset(buf, 0, sizeof(buf));
    rt_vq_submit(d, &d->q[0], &b, 1);
    uint32_t id, len;
    if (!rt_vq_wait(&d->q[0], &id, &len, 2000000))
        FAIL("vqbad: good request %s not served (status 0x%x)", when, rt_vdev_status(d));
    if (id != 0 || len == 0)
        FAIL("vqbad: good request %s came back as id %u len %u", when, id, len);
    return len;
}

static void other_device(void)
{
    static uint8_t sector[512];
    static const char line[] = "vqbad: virtio-console still served\n";
    static const uint8_t frame[60] = {0xff, 0xff, 0xff, 0xff, 0xff, 0xff, [12] = 0x88, [13] = 0xb5};
    const char *name = NULL;
    bool ok = false;
    if (rt_virtio_find(RT_VIRTIO_BLK))
        name = "blk", ok = rt_vblk_read(0, sector, 1);
    else if (rt_virtio_find(RT_VIRTIO_CONSOLE))
        name = "console", ok = rt_vcons_write(line, sizeof(line) - 1);
    else if (rt_virtio_find(RT_VIRTIO_NET))
        name = "net", ok = rt_vnet_send(frame, sizeof(frame));
    if (!name) {
        rt_printf("vqbad: no other virtio device to serve\n");
        return;
    }
    if (!ok)
        FAIL("vqbad: virtio-%s not served: %s", name, rt_virtio_error());
    rt_printf("vqbad: virtio-%s served too\n", name);
}

static bool needs_reset(void *arg) { return rt_vdev_status(arg) & RT_VIRTIO_S_NEEDS_RESET; }
static uint32_t config_irq_before;
static bool config_irq_seen(void *arg)
{
    const struct rt_vdev *d = arg;
    return (d->isr_seen & 2) && d->irqs != config_irq_before;
}

/* rt_wait in 2 ms slices: the config interrupt wakes it early, a missing one costs a slice. */
static bool wait_for(bool (*done)(void *), void *arg, uint32_t timeout_us)
{
    for (uint32_t waited = 0; !done(arg); waited += 2000)
        if (waited >= timeout_us)
            return false;
        else
            rt_wait(done, arg, 2000);
    return true;
}

void action_vqbad(void)
{
    const char *kind = tp_value ? tp_value : "";
    struct rt_vdev *d = rt_virtio_find(RT_VIRTIO_RNG);
    if (!d)
        FAIL("vqbad: no virtio-rng device in the DSDT");
    /* indirect-off is the only kind that must not negotiate VIRTIO_F_INDIRECT_DESC. */
    uint64_t want = strcmp(kind, "indirect-off") ? RT_VIRTIO_F_INDIRECT_DESC : 0;
    if (!rt_vdev_start(d, want, 1))
        FAIL("vqbad: %s", d->error);
    rt_virtio_irq_enable(d);
    struct rt_vq *q = &d->q[0];
    good_request(d, "before the bad chain");

    if (!strcmp(kind, "jump")) {
        /* An available index more than a queue size ahead of the device: nothing behind it can be trusted. */
        q->avail->idx = (uint16_t)(q->avail->idx + q->size + 1);
        rt_vq_notify(d, q);
        uint32_t irqs = d->irqs;
        if (!wait_for(needs_reset, d, 2000000))
            FAIL("vqbad: jump: no DEVICE_NEEDS_RESET (status 0x%x)", rt_vdev_status(d));
        /* The device sets the bit, then raises the config interrupt (§2.1.2): give it 100 ms to land. */
        config_irq_before = irqs;
        wait_for(config_irq_seen, d, 100000);
        rt_printf("vqbad: jump: status 0x%x has DEVICE_NEEDS_RESET (config interrupt %s)\n", rt_vdev_status(d),
                  config_irq_seen(d) ? "taken" : "not seen");
        if (!rt_vdev_start(d, want, 1)) /* resets first */
            FAIL("vqbad: restart after reset: %s", d->error);
        uint32_t len = good_request(d, "after reset");
        rt_printf("vqbad: jump: reset, then the same queue served %u bytes\n", len);
        other_device();
        return;
    }

    uint16_t head = write_bad(kind, q->desc, q->size);
    rt_vq_publish(d, q, head);
    if (head < q->size) {
        uint32_t id, len;
        if (!rt_vq_wait(q, &id, &len, 2000000))
            FAIL("vqbad: %s: the refused chain never came back (status 0x%x)", kind, rt_vdev_status(d));
        if (id != head || len != 0)
            FAIL("vqbad: %s: chain came back as id %u len %u, not refused", kind, id, len);
        rt_printf("vqbad: %s: refused, returned with length 0\n", kind);
    } else {
        rt_printf("vqbad: %s: published head %u of a %u-entry queue\n", kind, head, q->size);
    }
    uint32_t len = good_request(d, "after the bad chain");
    uint32_t st = rt_vdev_status(d);
    if (st & RT_VIRTIO_S_NEEDS_RESET)
        FAIL("vqbad: %s: device wants a reset (status 0x%x)", kind, st);
    rt_printf("vqbad: %s: the same queue served %u bytes after it\n", kind, len);
    other_device();
}
