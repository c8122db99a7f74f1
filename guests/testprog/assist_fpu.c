/* The assist-fpu action: the x87/SSE/XSAVE instructions evmm completes (src/vcpu/x86_fpu.h), executed at CPL0
 * where the slow host's in-kernel emulator hands them to the VMM, each checked against the SDM vol. 2
 * description; then the faulting forms, whose handler checks vector, error code and RIP at the instruction.
 * The runtime leaves CR4.OSFXSR/OSXSAVE clear and XCR0 at reset: this action sets what it needs and puts
 * CR0/CR4 back at the end. Memory operands are [%rdi], the form evmm's decoder takes today. */
#include "testprog.h"

#define CR0_MP (1ull << 1)
#define CR0_EM (1ull << 2)
#define CR0_TS (1ull << 3)
#define CR0_NE (1ull << 5)
#define CR4_OSFXSR (1ull << 9)
#define CR4_OSXMMEXCPT (1ull << 10)
#define CR4_OSXSAVE (1ull << 18)
#define VEC_NM 7
#define VEC_MF 16

static uint8_t area[1024] __attribute__((aligned(64)));
static uint8_t xarea[4096] __attribute__((aligned(64)));
static uint32_t mx __attribute__((aligned(16)));

static volatile uint64_t f_vector, f_error, f_rip, f_skip;

static void record_fault(struct rt_frame *f)
{
    f_vector = f->vector;
    f_error = f->error;
    f_rip = f->rip;
    f->rip += f_skip; /* past the faulting instruction, which did not complete */
}

#define CHECK(name, cond, ...)                                                                                    \
    do {                                                                                                          \
        if (!(cond))                                                                                              \
            tp_fail(RT_EXIT_ASSIST_FAILED, "assist-fpu: " name " FAILED: " __VA_ARGS__);                          \
        rt_printf("assist-fpu: " name " ok\n");                                                                   \
    } while (0)

static uint64_t read_cr0(void) { uint64_t v; __asm__ volatile("mov %%cr0, %0" : "=r"(v)); return v; }
static uint64_t read_cr4(void) { uint64_t v; __asm__ volatile("mov %%cr4, %0" : "=r"(v)); return v; }
static void write_cr0(uint64_t v) { __asm__ volatile("mov %0, %%cr0" ::"r"(v) : "memory"); }
static void write_cr4(uint64_t v) { __asm__ volatile("mov %0, %%cr4" ::"r"(v) : "memory"); }

static uint64_t xgetbv(uint32_t idx)
{
    uint32_t lo, hi;
    __asm__ volatile(".byte 0x0f, 0x01, 0xd0 /* xgetbv */" : "=a"(lo), "=d"(hi) : "c"(idx));
    return lo | (uint64_t)hi << 32;
}
static void xsetbv(uint32_t idx, uint64_t v)
{
    __asm__ volatile(".byte 0x0f, 0x01, 0xd1 /* xsetbv */" ::"c"(idx), "a"((uint32_t)v), "d"((uint32_t)(v >> 32)) : "memory");
}
static void fxsave64(void *p) { __asm__ volatile("fxsave64 (%0)" ::"D"(p) : "memory"); }
static void fxrstor64(void *p) { __asm__ volatile("fxrstor64 (%0)" ::"D"(p) : "memory"); }

static uint16_t u16(const uint8_t *p) { return (uint16_t)(p[0] | p[1] << 8); }
static uint32_t u32(const uint8_t *p) { return u16(p) | (uint32_t)u16(p + 2) << 16; }
static uint64_t u64(const uint8_t *p) { return u32(p) | (uint64_t)u32(p + 4) << 32; }
static void put16(uint8_t *p, uint16_t v) { p[0] = (uint8_t)v; p[1] = (uint8_t)(v >> 8); }
static void put32(uint8_t *p, uint32_t v) { put16(p, (uint16_t)v); put16(p + 2, (uint16_t)(v >> 16)); }
static void clear(uint8_t *p, size_t n) { for (size_t i = 0; i < n; ++i) p[i] = 0; }

/* Runs the instruction at label 1 of body (len bytes) and checks the fault the handler saw. */
#define RUN_FAULTING(len, body, ...)                                                                              \
    uint64_t at_;                                                                                                 \
    f_vector = ~0ull;                                                                                             \
    f_error = 0;                                                                                                  \
    f_skip = len;                                                                                                 \
    __asm__ volatile("1: " body "\n leaq 1b(%%rip), %0" : "=r"(at_) : __VA_ARGS__ : "memory")
#define EXPECT_FAULT(name, vec, err, len, body, ...)                                                              \
    do {                                                                                                          \
        RUN_FAULTING(len, body, __VA_ARGS__);                                                                     \
        CHECK(name, f_vector == (vec) && f_error == (err) && f_rip == at_,                                        \
              "vector %lu error 0x%lx rip 0x%lx, expected %u error 0x%x at 0x%lx", f_vector, f_error, f_rip,     \
              (unsigned)(vec), (unsigned)(err), at_);                                                             \
    } while (0)
/* For fxsave/fxrstor, which KVM's own emulator runs on some hosts (without its alignment check): a wrong
 * result is printed as "wrong", and the KVM test fails it only where evmm completed the instruction. */
#define EXPECT_FAULT_SOFT(name, vec, err, len, body, ...)                                                         \
    do {                                                                                                          \
        RUN_FAULTING(len, body, __VA_ARGS__);                                                                     \
        if (f_vector == (vec) && f_error == (err) && f_rip == at_)                                                \
            rt_printf("assist-fpu: " name " ok\n");                                                               \
        else                                                                                                      \
            rt_printf("assist-fpu: " name " wrong: vector %lu error 0x%lx\n", f_vector, f_error);                 \
    } while (0)

static void test_results(bool has_avx)
{
    xsetbv(0, 3);
    CHECK("xgetbv", xgetbv(0) == 3, "XCR0 0x%lx after xsetbv 3", xgetbv(0));

    /* x87 register forms: 0 < 1 sets CF only; 0 + 1 + 1 leaves 2.0 alone on the stack (TOP 7). */
    uint8_t below;
    uint16_t sw;
    __asm__ volatile("fninit\n fld1\n fldz\n fcomi %%st(1), %%st\n setc %0\n faddp\n fld1\n faddp\n fnstsw %%ax"
                     : "=r"(below), "=a"(sw)::"cc", "memory");
    CHECK("fcomi", below == 1, "CF %u for 0 < 1", below);
    CHECK("fnstsw", ((sw >> 11) & 7) == 7 && (sw & 0x3f) == 0, "FSW 0x%x, expected TOP 7 and no exception", sw);
    clear(area, sizeof(area));
    fxsave64(area);
    CHECK("x87", u64(area + 32) == 0x8000000000000000ull && u16(area + 40) == 0x4000 && u16(area) == 0x37f,
          "ST0 %lx:%x FCW 0x%x, expected 2.0 and 0x37f", u64(area + 32), u16(area + 40), u16(area));
    CHECK("fxsave", u32(area + 24) == 0x1f80 && u32(area + 28) != 0, "MXCSR 0x%x mask 0x%x", u32(area + 24),
          u32(area + 28));

    mx = 0x9f80; /* flush-to-zero on */
    __asm__ volatile("ldmxcsr (%0)" ::"D"(&mx) : "memory");
    mx = 0;
    __asm__ volatile("stmxcsr (%0)" ::"D"(&mx) : "memory");
    CHECK("ldmxcsr", mx == 0x9f80, "MXCSR 0x%x after ldmxcsr 0x9f80", mx);
    if (has_avx) {
        xsetbv(0, 7); /* the VEX forms need XCR0 SSE and AVX */
        mx = 0x1fc0;  /* denormals-are-zero on */
        __asm__ volatile("vldmxcsr (%0)" ::"D"(&mx) : "memory");
        mx = 0;
        __asm__ volatile("vstmxcsr (%0)" ::"D"(&mx) : "memory");
        CHECK("vldmxcsr", mx == 0x1fc0, "MXCSR 0x%x after vldmxcsr 0x1fc0", mx);
        xsetbv(0, 3);
    } else {
        rt_printf("assist-fpu: vldmxcsr skipped (no AVX in cpuid)\n");
    }

    put16(area, 0x27f); /* 53-bit precision */
    put32(area + 24, 0x1f80);
    fxrstor64(area);
    clear(area, sizeof(area));
    fxsave64(area);
    CHECK("fxrstor", u16(area) == 0x27f && u32(area + 24) == 0x1f80, "FCW 0x%x MXCSR 0x%x", u16(area), u32(area + 24));

    clear(xarea, sizeof(xarea));
    __asm__ volatile("xsave (%0)" ::"D"(xarea), "a"(3), "d"(0) : "memory");
    CHECK("xsave", u16(xarea) == 0x27f && (u64(xarea + 512) & ~3ull) == 0 && u32(xarea + 24) == 0x1f80,
          "FCW 0x%x XSTATE_BV 0x%lx MXCSR 0x%x", u16(xarea), u64(xarea + 512), u32(xarea + 24));
    clear(xarea, sizeof(xarea));
    __asm__ volatile("xsaveopt (%0)" ::"D"(xarea), "a"(3), "d"(0) : "memory");
    CHECK("xsaveopt", u16(xarea) == 0x27f, "FCW 0x%x", u16(xarea));

    /* xrstor with XSTATE_BV 0: x87 and SSE go to their initial configuration, MXCSR comes from memory. */
    put32(xarea + 24, 0x1fc0);
    put16(xarea + 512, 0);
    __asm__ volatile("xrstor (%0)" ::"D"(xarea), "a"(3), "d"(0) : "memory");
    clear(area, sizeof(area));
    fxsave64(area);
    CHECK("xrstor", u16(area) == 0x37f && u32(area + 24) == 0x1fc0, "FCW 0x%x MXCSR 0x%x", u16(area), u32(area + 24));

    __asm__ volatile("fwait" ::: "memory");
    rt_printf("assist-fpu: fwait ok\n");
}

static void test_faults(uint64_t cr0)
{
    rt_set_handler(RT_VEC_GP, record_fault);
    rt_set_handler(RT_VEC_UD, record_fault);
    rt_set_handler(VEC_NM, record_fault);
    rt_set_handler(VEC_MF, record_fault);

    EXPECT_FAULT_SOFT("fxsave-misaligned", RT_VEC_GP, 0, 4, "fxsave64 (%1)", "D"(area + 8));
    mx = 0xffff1f80;
    EXPECT_FAULT("ldmxcsr-reserved", RT_VEC_GP, 0, 3, "ldmxcsr (%1)", "D"(&mx));
    /* Faulting, xgetbv leaves RAX and RDX alone; if it did not fault the action fails anyway. */
    EXPECT_FAULT("xgetbv-index", RT_VEC_GP, 0, 3, ".byte 0x0f, 0x01, 0xd0", "c"(2), "a"(0), "d"(0));
    EXPECT_FAULT("xsetbv-invalid", RT_VEC_GP, 0, 3, ".byte 0x0f, 0x01, 0xd1", "c"(0), "a"(2), "d"(0));
    EXPECT_FAULT("xsave-misaligned", RT_VEC_GP, 0, 3, "xsave (%1)", "D"(xarea + 16), "a"(3), "d"(0));
    clear(xarea, 1024);
    put16(xarea, 0x37f);
    put32(xarea + 24, 0x1f80);
    put16(xarea + 512, 0x200); /* PKRU, not in XCR0 */
    EXPECT_FAULT("xrstor-header", RT_VEC_GP, 0, 3, "xrstor (%1)", "D"(xarea), "a"(3), "d"(0));

    write_cr0(cr0 | CR0_TS);
    EXPECT_FAULT_SOFT("fxsave-ts", VEC_NM, 0, 4, "fxsave64 (%1)", "D"(area));
    EXPECT_FAULT("x87-ts", VEC_NM, 0, 2, "fld1", "r"(0));
    write_cr0(cr0);

    /* Divide-by-zero unmasked and flagged: the next waiting instruction raises #MF (CR0.NE is set). */
    clear(area, sizeof(area));
    put16(area, 0x37b);
    put16(area + 2, 0x0004);
    put32(area + 24, 0x1f80);
    fxrstor64(area);
    EXPECT_FAULT("fwait-pending", VEC_MF, 0, 1, "fwait", "r"(0));
    EXPECT_FAULT("x87-pending", VEC_MF, 0, 2, "fld1", "r"(0));
    __asm__ volatile("fnclex\n fwait" ::: "memory");
    rt_printf("assist-fpu: fnclex ok\n");
    __asm__ volatile("fninit" ::: "memory");

    rt_set_handler(RT_VEC_GP, NULL);
    rt_set_handler(RT_VEC_UD, NULL);
    rt_set_handler(VEC_NM, NULL);
    rt_set_handler(VEC_MF, NULL);
}

void action_assist_fpu(void)
{
    uint32_t a, b, c, d;
    __asm__ volatile("cpuid" : "=a"(a), "=b"(b), "=c"(c), "=d"(d) : "a"(1), "c"(0));
    if (!(c & (1u << 26))) {
        rt_printf("assist-fpu: skipped (no XSAVE in cpuid)\n");
        return;
    }
    uint64_t cr0 = read_cr0(), cr4 = read_cr4();
    uint64_t fpu_cr0 = (cr0 & ~(CR0_EM | CR0_TS)) | CR0_MP | CR0_NE;
    write_cr0(fpu_cr0);
    write_cr4(cr4 | CR4_OSFXSR | CR4_OSXMMEXCPT | CR4_OSXSAVE);
    test_results(c & (1u << 28));
    test_faults(fpu_cr0);
    write_cr4(cr4);
    write_cr0(cr0);
    rt_printf("assist-fpu: all ok\n");
}
