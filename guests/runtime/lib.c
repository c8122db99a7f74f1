/* The few libc pieces the compiler and the programs need. Copies, compares and searches use the x86 string
 * instructions: one instruction for the whole buffer, whose iterations KVM's emulator runs in bulk, where a
 * C loop would cost several emulated instructions (microseconds each on the slow host) per byte. */
#include "internal.h"

void *memcpy(void *dst, const void *src, size_t n)
{
    void *d = dst;
    __asm__ volatile("rep movsb" : "+D"(d), "+S"(src), "+c"(n) : : "memory");
    return dst;
}

void *memmove(void *dst, const void *src, size_t n)
{
    if ((uintptr_t)dst <= (uintptr_t)src || (uintptr_t)dst >= (uintptr_t)src + n)
        return memcpy(dst, src, n);
    /* Overlapping with dst above src: copy backwards (DF=1), then restore DF=0 as the ABI requires. */
    const uint8_t *s = (const uint8_t *)src + n - 1;
    uint8_t *d = (uint8_t *)dst + n - 1;
    __asm__ volatile("std; rep movsb; cld" : "+D"(d), "+S"(s), "+c"(n) : : "memory");
    return dst;
}

void *memset(void *dst, int c, size_t n)
{
    void *d = dst;
    __asm__ volatile("rep stosb" : "+D"(d), "+c"(n) : "a"(c) : "memory");
    return dst;
}

int memcmp(const void *a, const void *b, size_t n)
{
    if (!n)
        return 0;
    const uint8_t *x = a, *y = b;
    bool differ;
    __asm__ volatile("repe cmpsb" : "+S"(x), "+D"(y), "+c"(n), "=@ccnz"(differ) : : "memory");
    return differ ? x[-1] - y[-1] : 0; /* both pointers stopped one past the deciding byte */
}

void *memchr(const void *s, int c, size_t n)
{
    if (!n)
        return NULL;
    const uint8_t *p = s;
    bool found;
    __asm__ volatile("repne scasb" : "+D"(p), "+c"(n), "=@ccz"(found) : "a"(c) : "memory");
    return found ? (void *)(p - 1) : NULL;
}

size_t strlen(const char *s)
{
    const char *p = s;
    size_t n = ~(size_t)0;
    __asm__ volatile("repne scasb" : "+D"(p), "+c"(n) : "a"(0) : "cc", "memory");
    return (size_t)(p - s) - 1;
}

int strcmp(const char *a, const char *b)
{
    /* Stops at the first difference, so it never reads past the end of the shorter string. */
    return memcmp(a, b, strlen(a) + 1);
}

int strncmp(const char *a, const char *b, size_t n)
{
    size_t la = strlen(a) + 1;
    return memcmp(a, b, la < n ? la : n);
}

const void *rt_find_u64(const void *start, size_t bytes, uint64_t value)
{
    const uint64_t *p = start;
    size_t n = bytes / 8;
#ifdef __x86_64__
    bool found = false;
    if (n)
        __asm__ volatile("repne scasq" : "+D"(p), "+c"(n), "=@ccz"(found) : "a"(value) : "memory");
    return found ? p - 1 : NULL;
#else /* no scasq outside long mode (the 32-bit runtime of guests/xen/rt32) */
    for (; n; n--, p++)
        if (*p == value)
            return p;
    return NULL;
#endif
}

const void *rt_find_u32(const void *start, size_t bytes, uint32_t value)
{
    const uint32_t *p = start;
    size_t n = bytes / 4;
    bool found = false;
    if (n)
        __asm__ volatile("repne scasl" : "+D"(p), "+c"(n), "=@ccz"(found) : "a"(value) : "memory");
    return found ? p - 1 : NULL;
}

typedef uint64_t __attribute__((may_alias, aligned(1))) unaligned_u64;

uint32_t rt_sum_bytes(const void *p, size_t n)
{
    /* Eight bytes per word: spread them into four 16-bit lanes, and fold the lanes before they can carry
     * into each other (128 words add at most 128 * 2 * 255 < 65536 to a lane). Four words per step keep
     * the loop overhead small. */
    const uint8_t *b = p;
    const uint64_t m = 0x00ff00ff00ff00ffull;
    uint32_t total = 0;
    while (n >= 32) {
        size_t steps = n / 32 < 32 ? n / 32 : 32;
        const unaligned_u64 *w = (const unaligned_u64 *)b, *end = w + 4 * steps;
        uint64_t even = 0, odd = 0;
        for (; w != end; w += 4) {
            uint64_t a = w[0], c = w[1], d = w[2], e = w[3];
            even += (a & m) + (c & m) + (d & m) + (e & m);
            odd += ((a >> 8) & m) + ((c >> 8) & m) + ((d >> 8) & m) + ((e >> 8) & m);
        }
        uint64_t lanes = even + odd;
        total += (uint32_t)((lanes & 0xffff) + (lanes >> 16 & 0xffff) + (lanes >> 32 & 0xffff) + (lanes >> 48));
        b += 32 * steps;
        n -= 32 * steps;
    }
    while (n--)
        total += *b++;
    return total;
}

bool rt_parse_u64(const char *s, uint64_t *out)
{
    unsigned base = 10;
    if (s[0] == '0' && (s[1] == 'x' || s[1] == 'X')) {
        base = 16;
        s += 2;
    }
    if (!*s)
        return false;
    uint64_t v = 0;
    for (; *s; s++) {
        unsigned d;
        if (*s >= '0' && *s <= '9')
            d = (unsigned)(*s - '0');
        else if (*s >= 'a' && *s <= 'f')
            d = (unsigned)(*s - 'a' + 10);
        else if (*s >= 'A' && *s <= 'F')
            d = (unsigned)(*s - 'A' + 10);
        else
            return false;
        if (d >= base)
            return false;
        v = v * base + d;
    }
    *out = v;
    return true;
}

const char *rt_arg(const char *key)
{
    for (uint32_t i = 0; i < rt_boot.n_args; i++)
        if (!strcmp(rt_boot.args[i].key, key))
            return rt_boot.args[i].value ? rt_boot.args[i].value : "";
    return NULL;
}

void rt_spin_lock(rt_spinlock *l)
{
    while (__atomic_exchange_n(&l->locked, 1, __ATOMIC_ACQUIRE))
        while (l->locked)
            cpu_relax();
}

void rt_spin_unlock(rt_spinlock *l) { __atomic_store_n(&l->locked, 0, __ATOMIC_RELEASE); }
