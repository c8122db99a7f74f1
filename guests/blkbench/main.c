/* blkbench: virtio-blk throughput through the runtime's synchronous driver, timed by the guest's TSC.
 * evmm_blk_bench runs it on evmm and on QEMU's microvm against the same image and compares both with
 * the host reading that file itself. Each phase prints one line that the bench parses:
 *   blkbench: <phase> ops=<n> bytes=<b> cycles=<c>
 * Phases, in order:
 *   spin     a two-instruction loop, 10000 times (ops= counts instructions): what one guest instruction
 *            costs here, emulated at CPL0 on hosts without VT-x/AMD-V
 *   null     get-id requests: the request path with no disk I/O (this guest's emulated driver code, the
 *            notification, the device, the interrupt), the floor under every request below
 *   rand4k   4 KiB reads at pseudo-random 4 KiB-aligned offsets (xorshift64, the bench replays the
 *            same sequence on the host)
 *   seqread  1 MiB reads from the start of the disk; seqwrite: 1 MiB writes over the same range
 * Words: reads=N (default 1000), mib=M (default 32), seed=S (default 1). The loops do nothing else:
 * every guest instruction is emulated on hosts without VT-x/AMD-V. */
#include "rt/hw.h"
#include "rt/rt.h"
#include "rt/virtio.h"

#define SECTORS_4K 8u
#define SECTORS_1M 2048u

static uint64_t word(const char *key, uint64_t dflt)
{
    const char *v = rt_arg(key);
    uint64_t n;
    if (!v)
        return dflt;
    if (!rt_parse_u64(v, &n) || n == 0) {
        rt_printf("blkbench: bad %s=%s\n", key, v);
        rt_exit(RT_EXIT_BAD_CMDLINE);
    }
    return n;
}

static void check(bool ok, const char *what)
{
    if (!ok) {
        rt_printf("blkbench: %s failed: %s\n", what, rt_virtio_error());
        rt_exit(RT_EXIT_VIRTIO_FAILED);
    }
}

/* A 1 MiB buffer at the top of the largest RAM range below 4 GiB (identity mapped): away from this
 * image, and not in its .bss, which the runtime would clear one emulated store at a time. */
static uint8_t *big_buffer(void)
{
    uint64_t best = 0, top = 0;
    for (uint32_t i = 0; i < rt_boot.n_mmap; i++) {
        const struct rt_mmap_entry *e = &rt_boot.mmap[i];
        uint64_t end = e->end < (1ull << 32) ? e->end : (1ull << 32);
        if (e->type == 1 && end > e->start && end - e->start > best)
            best = end - e->start, top = end;
    }
    if (best < (8ull << 20)) {
        rt_printf("blkbench: no 8 MiB RAM range for the buffer\n");
        rt_exit(RT_EXIT_MEM_FAILED);
    }
    return (uint8_t *)(uintptr_t)((top - (2ull << 20)) & ~0xfffffull);
}

static void report(const char *phase, uint64_t ops, uint64_t bytes, uint64_t t0)
{
    uint64_t cycles = rdtsc() - t0;
    rt_printf("blkbench: %s ops=%lu bytes=%lu cycles=%lu\n", phase, ops, bytes, cycles);
}

int rt_main(void)
{
    uint64_t reads = word("reads", 1000), mib = word("mib", 32), x = word("seed", 1);
    uint8_t *buf = big_buffer();
    uint64_t sectors;
    char id[21];
    check(rt_vblk_capacity(&sectors), "capacity");
    if (sectors < (mib + 1) * SECTORS_1M) {
        rt_printf("blkbench: the disk has %lu sectors, fewer than mib=%lu needs\n", sectors, mib);
        return RT_EXIT_VIRTIO_FAILED;
    }
    rt_printf("blkbench: sectors=%lu tsc_khz=%lu stated=%d\n", sectors, rt_tsc_khz(), rt_tsc_khz_stated());
    /* Warm-up: the device starts, its interrupt is routed, the first request of each kind is served. */
    check(rt_vblk_get_id(id), "get-id");
    check(rt_vblk_read(0, buf, SECTORS_4K), "read");
    check(rt_vblk_read(0, buf, SECTORS_1M), "read");

    uint64_t t0 = rdtsc(), n = 10000;
    __asm__ volatile("1: dec %0; jnz 1b" : "+r"(n));
    report("spin", 20000, 0, t0);

    t0 = rdtsc();
    for (uint64_t i = 0; i < reads; i++)
        check(rt_vblk_get_id(id), "get-id");
    report("null", reads, 0, t0);

    uint64_t blocks = sectors / SECTORS_4K;
    t0 = rdtsc();
    for (uint64_t i = 0; i < reads; i++) {
        x ^= x << 13, x ^= x >> 7, x ^= x << 17; /* xorshift64 (Marsaglia 2003) */
        check(rt_vblk_read(x % blocks * SECTORS_4K, buf, SECTORS_4K), "read");
    }
    report("rand4k", reads, reads * 4096, t0);

    t0 = rdtsc();
    for (uint64_t i = 0; i < mib; i++)
        check(rt_vblk_read(i * SECTORS_1M, buf, SECTORS_1M), "read");
    report("seqread", mib, mib << 20, t0);

    t0 = rdtsc();
    for (uint64_t i = 0; i < mib; i++)
        check(rt_vblk_write(i * SECTORS_1M, buf, SECTORS_1M), "write");
    report("seqwrite", mib, mib << 20, t0);
    return RT_EXIT_OK;
}
