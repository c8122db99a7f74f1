/* The 64-bit division helpers GCC calls from 32-bit code (its libgcc ABI: __udivdi3, __umoddi3, and
 * __udivmoddi4 when it wants both results). The build host has no 32-bit libgcc, so they are here. Division by a 32-bit divisor, the common case
 * (printf's bases, microseconds from nanoseconds), takes two divl; a wider divisor takes a shift-subtract
 * loop of 64 steps. */
#include <stddef.h>
#include <stdint.h>

uint64_t __udivmoddi4(uint64_t n, uint64_t d, uint64_t *rem);
uint64_t __udivdi3(uint64_t n, uint64_t d);
uint64_t __umoddi3(uint64_t n, uint64_t d);

/* rem may be NULL. */
uint64_t __udivmoddi4(uint64_t n, uint64_t d, uint64_t *rem)
{
    if (d == 0) {
        __asm__ volatile("ud2"); /* what a hardware divide by zero would be: a fault, reported as FATAL */
        return 0;
    }
    if (d >> 32 == 0) {
        uint32_t d32 = (uint32_t)d, hi = (uint32_t)(n >> 32), lo = (uint32_t)n;
        uint32_t q_hi = hi / d32, r = hi % d32, q_lo;
        /* r < d32, so the quotient of r:lo by d32 fits in 32 bits. */
        __asm__("divl %[d]" : "=a"(q_lo), "=d"(r) : "a"(lo), "d"(r), [d] "rm"(d32) : "cc");
        if (rem)
            *rem = r;
        return (uint64_t)q_hi << 32 | q_lo;
    }
    uint64_t q = 0, r = 0;
    for (int i = 63; i >= 0; i--) {
        r = r << 1 | (n >> i & 1);
        if (r >= d) {
            r -= d;
            q |= 1ull << i;
        }
    }
    if (rem)
        *rem = r;
    return q;
}

uint64_t __udivdi3(uint64_t n, uint64_t d) { return __udivmoddi4(n, d, NULL); }

uint64_t __umoddi3(uint64_t n, uint64_t d)
{
    uint64_t r;
    __udivmoddi4(n, d, &r);
    return r;
}
