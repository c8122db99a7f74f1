/* The assist action: instructions the slow host's in-kernel emulator cannot run at CPL0 (DESIGN.md, "The
 * host we run on"), executed on purpose so that the VMM must complete each one correctly. Encodings are
 * spelled out where an assembler could choose another form (int3 is 0xCC, not CD 03). Results follow the
 * SDM vol. 2 descriptions of each instruction. */
#include "testprog.h"

#define EFLAGS_CF (1u << 0)
#define EFLAGS_ZF (1u << 6)
#define EFLAGS_AC (1u << 18)

static volatile uint64_t trap_vector, trap_rip;

static void record_trap(struct rt_frame *f)
{
    trap_vector = f->vector;
    trap_rip = f->rip; /* a trap reports the address after the instruction */
}

#define CHECK(name, cond, ...)                                                                                    \
    do {                                                                                                          \
        if (!(cond))                                                                                              \
            tp_fail(RT_EXIT_ASSIST_FAILED, "assist: " name " FAILED: " __VA_ARGS__);                              \
    } while (0)

static void test_traps(void)
{
    uint64_t after;
    rt_set_handler(RT_VEC_BP, record_trap);
    trap_vector = ~0ull;
    __asm__ volatile(".byte 0xcc /* int3 */\n1: leaq 1b(%%rip), %0" : "=r"(after)::"memory");
    CHECK("int3", trap_vector == RT_VEC_BP && trap_rip == after, "vector %lu rip 0x%lx, expected 3 at 0x%lx",
          trap_vector, trap_rip, after);
    rt_printf("assist: int3 ok\n");
    rt_set_handler(RT_VEC_BP, NULL);

    rt_set_handler(0x80, record_trap);
    trap_vector = ~0ull;
    __asm__ volatile(".byte 0xcd, 0x80 /* int $0x80 */\n1: leaq 1b(%%rip), %0" : "=r"(after)::"memory");
    CHECK("int80", trap_vector == 0x80 && trap_rip == after, "vector %lu rip 0x%lx, expected 128 at 0x%lx",
          trap_vector, trap_rip, after);
    rt_printf("assist: int80 ok\n");
    rt_set_handler(0x80, NULL);
}

static uint64_t rflags_after(int insn_is_stac)
{
    uint64_t f;
    if (insn_is_stac)
        __asm__ volatile(".byte 0x0f, 0x01, 0xcb /* stac */\n pushfq\n popq %0" : "=r"(f)::"cc");
    else
        __asm__ volatile(".byte 0x0f, 0x01, 0xca /* clac */\n pushfq\n popq %0" : "=r"(f)::"cc");
    return f;
}

static void set_rflags(uint64_t f) { __asm__ volatile("pushq %0\n popfq" ::"r"(f) : "cc"); }

static void test_smap_insns(bool smap)
{
    if (!smap) {
        rt_printf("assist: clac skipped (no SMAP in cpuid)\nassist: stac skipped (no SMAP in cpuid)\n");
        return;
    }
    /* Set AC by popf first, so that clac has something to clear. */
    uint64_t base = read_rflags();
    set_rflags(base | EFLAGS_AC);
    uint64_t f = rflags_after(0);
    CHECK("clac", !(f & EFLAGS_AC), "rflags 0x%lx still has AC", f);
    rt_printf("assist: clac ok\n");
    f = rflags_after(1);
    set_rflags(base & ~(uint64_t)EFLAGS_AC);
    CHECK("stac", f & EFLAGS_AC, "rflags 0x%lx lacks AC", f);
    rt_printf("assist: stac ok\n");
}

static void test_rdpid(bool have)
{
    if (!have) {
        rt_printf("assist: rdpid skipped (no RDPID in cpuid)\n");
        return;
    }
    uint64_t id;
    __asm__ volatile(".byte 0xf3, 0x0f, 0xc7, 0xf8 /* rdpid %%rax */" : "=a"(id));
    uint64_t aux = rdmsr(0xc0000103); /* IA32_TSC_AUX */
    CHECK("rdpid", id == aux, "rdpid gave 0x%lx, TSC_AUX holds 0x%lx", id, aux);
    rt_printf("assist: rdpid ok\n");
}

/* ---- popcnt, lzcnt, tzcnt with 16/32/64-bit operands ---- */
struct bitop_result {
    uint64_t value, rflags;
};

#define DEFINE_BITOP(fn, insn, type)                                                                              \
    static struct bitop_result fn(uint64_t in)                                                                    \
    {                                                                                                             \
        type x = (type)in, r;                                                                                     \
        uint64_t f;                                                                                               \
        __asm__ volatile(insn " %2, %0\n pushfq\n popq %1" : "=&r"(r), "=r"(f) : "r"(x) : "cc");                  \
        return (struct bitop_result){r, f};                                                                       \
    }
DEFINE_BITOP(popcnt16, "popcntw", uint16_t)
DEFINE_BITOP(popcnt32, "popcntl", uint32_t)
DEFINE_BITOP(popcnt64, "popcntq", uint64_t)
DEFINE_BITOP(lzcnt16, "lzcntw", uint16_t)
DEFINE_BITOP(lzcnt32, "lzcntl", uint32_t)
DEFINE_BITOP(lzcnt64, "lzcntq", uint64_t)
DEFINE_BITOP(tzcnt16, "tzcntw", uint16_t)
DEFINE_BITOP(tzcnt32, "tzcntl", uint32_t)
DEFINE_BITOP(tzcnt64, "tzcntq", uint64_t)

struct bitop_case {
    struct bitop_result (*run)(uint64_t);
    unsigned bits;
    uint64_t in, out;
    bool zf, cf;
};

/* popcnt: ZF = (source == 0), CF = 0. lzcnt/tzcnt: CF = (source == 0), ZF = (result == 0). */
static const struct bitop_case popcnt_cases[] = {
    {popcnt16, 16, 0x8001, 2, false, false},
    {popcnt16, 16, 0, 0, true, false},
    {popcnt32, 32, 0xf0f0f0f0, 16, false, false},
    {popcnt64, 64, 0xffff00000000000full, 20, false, false},
    {popcnt64, 64, 0, 0, true, false},
    {NULL, 0, 0, 0, false, false},
};
static const struct bitop_case lzcnt_cases[] = {
    {lzcnt16, 16, 0x0001, 15, false, false},
    {lzcnt16, 16, 0, 16, false, true},
    {lzcnt32, 32, 0x00800000, 8, false, false},
    {lzcnt32, 32, 0x80000000, 0, true, false},
    {lzcnt64, 64, 1, 63, false, false},
    {lzcnt64, 64, 0, 64, false, true},
    {NULL, 0, 0, 0, false, false},
};
static const struct bitop_case tzcnt_cases[] = {
    {tzcnt16, 16, 0x8000, 15, false, false},
    {tzcnt16, 16, 0, 16, false, true},
    {tzcnt32, 32, 1, 0, true, false},
    {tzcnt32, 32, 0x100, 8, false, false},
    {tzcnt64, 64, 1ull << 40, 40, false, false},
    {tzcnt64, 64, 0, 64, false, true},
    {NULL, 0, 0, 0, false, false},
};

/* With assist-force, the bit-count instructions run whatever CPUID says, and a wrong result is
 * reported without stopping, so a test can tell which instructions a host's emulator mis-executes
 * (KVM's emulator decodes F3 0F BC/BD as BSF/BSR and never asks the VMM). */
static bool force;
static unsigned forced_failures;

static void test_bitops(const char *name, const struct bitop_case *c, bool have, const char *feature)
{
    if (!have && !force) { /* without the feature the CPU runs bsr/bsf instead, which would only mislead */
        rt_printf("assist: %s skipped (no %s in cpuid)\n", name, feature);
        return;
    }
    for (; c->run; c++) {
        struct bitop_result r = c->run(c->in);
        bool zf = r.rflags & EFLAGS_ZF, cf = r.rflags & EFLAGS_CF;
        if (r.value == c->out && zf == c->zf && cf == c->cf)
            continue;
        if (!force)
            tp_fail(RT_EXIT_ASSIST_FAILED,
                    "assist: %s FAILED: %u-bit 0x%lx gave %lu zf %d cf %d, expected %lu zf %d cf %d", name, c->bits,
                    c->in, r.value, zf, cf, c->out, c->zf, c->cf);
        rt_printf("assist: %s FAILED: %u-bit 0x%lx gave %lu zf %d cf %d, expected %lu zf %d cf %d\n", name, c->bits,
                  c->in, r.value, zf, cf, c->out, c->zf, c->cf);
        forced_failures++;
        return;
    }
    rt_printf("assist: %s ok\n", name);
}

void action_assist(void)
{
    struct cpuid_regs l1 = cpuid(1, 0), l7 = cpuid(7, 0), e1 = cpuid(0x80000001, 0);
    bool leaf7 = cpuid(0, 0).eax >= 7;
    test_traps();
    test_smap_insns(leaf7 && (l7.ebx & (1u << 20)));
    __asm__ volatile(".byte 0x9b /* fwait */");
    rt_printf("assist: fwait ok\n");
    test_rdpid(leaf7 && (l7.ecx & (1u << 22)));
    test_bitops("popcnt", popcnt_cases, l1.ecx & (1u << 23), "POPCNT");
    test_bitops("lzcnt", lzcnt_cases, e1.ecx & (1u << 5), "LZCNT");
    test_bitops("tzcnt", tzcnt_cases, leaf7 && (l7.ebx & (1u << 3)), "BMI1");
    if (forced_failures)
        tp_fail(RT_EXIT_ASSIST_FAILED, "assist: %u failed", forced_failures);
    rt_printf("assist: all ok\n");
}

void action_assist_force(void)
{
    force = true;
    action_assist();
}

/* fnop: an instruction the CPL0 emulator lacks and evmm does not complete (yet), so the VMM must stop
 * the VM with one line naming the address and the bytes. Where the CPU runs it natively, the guest
 * says so and exits 0 (status 1), and the test that expects the stop skips itself. */
void action_badinsn(void)
{
    /* crc32 %eax, %eax: neither KVM's emulator nor evmm's assists complete it. */
    __asm__ volatile(".byte 0xf2, 0x0f, 0x38, 0xf1, 0xc0" ::: "eax", "cc", "memory");
    rt_printf("badinsn: crc32 ran without the VMM\n");
}
