/* A small printf: %s %c %d %i %u %x %X %p with l/ll/z, width, precision for %s, '0' and '-' flags.
 * Output goes to COM1, one call at a time under a lock so that lines from different CPUs do not interleave.
 * The length modifiers follow the C types, so the same code serves the 32-bit runtime (guests/xen/rt32),
 * where long and size_t are 32 bits. */
#include "internal.h"

struct out {
    char *buf;
    size_t size, len;
};

/* Appends in runs (rep movsb/stosb inside memcpy/memset) rather than a byte at a time: guest instructions
 * are what cost on the slow host, and most of a line is literal text. */
static void put_run(struct out *o, const char *s, size_t n)
{
    size_t room = o->len + 1 < o->size ? o->size - 1 - o->len : 0;
    memcpy(o->buf + o->len, s, n < room ? n : room);
    o->len += n;
}

static void put_fill(struct out *o, char c, int n)
{
    if (n <= 0)
        return;
    size_t room = o->len + 1 < o->size ? o->size - 1 - o->len : 0;
    memset(o->buf + o->len, c, (size_t)n < room ? (size_t)n : room);
    o->len += (size_t)n;
}

static void put_padded(struct out *o, const char *s, size_t n, int width, bool left, char pad)
{
    int fill = width > (int)n ? width - (int)n : 0;
    if (!left)
        put_fill(o, pad, fill);
    put_run(o, s, n);
    if (left)
        put_fill(o, ' ', fill);
}

static void put_number(struct out *o, uint64_t v, bool negative, unsigned base, bool upper, int width, bool left,
                       char pad)
{
    const char *digits = upper ? "0123456789ABCDEF" : "0123456789abcdef";
    char tmp[24];
    int n = 0;
    do {
        tmp[sizeof(tmp) - 1 - n++] = digits[v % base];
        v /= base;
    } while (v);
    if (negative) {
        if (pad == '0') { /* the sign goes before zero padding: -0042 */
            put_run(o, "-", 1);
            width--;
        } else {
            tmp[sizeof(tmp) - 1 - n++] = '-';
        }
    }
    put_padded(o, tmp + sizeof(tmp) - n, (size_t)n, width, left, pad);
}

int rt_vsnprintf(char *buf, size_t size, const char *fmt, va_list ap)
{
    struct out o = {buf, size, 0};
    const char *end = fmt + strlen(fmt);
    while (fmt < end) {
        const char *pct = memchr(fmt, '%', (size_t)(end - fmt));
        put_run(&o, fmt, (size_t)((pct ? pct : end) - fmt));
        if (!pct)
            break;
        fmt = pct;
        bool left = false;
        char pad = ' ';
        int width = 0, precision = -1;
        enum { LEN_INT, LEN_LONG, LEN_LLONG, LEN_SIZE } len = LEN_INT;
        for (;; fmt++) {
            if (fmt[1] == '-')
                left = true;
            else if (fmt[1] == '0')
                pad = '0';
            else
                break;
        }
        while (fmt[1] >= '0' && fmt[1] <= '9')
            width = width * 10 + (*++fmt - '0');
        if (fmt[1] == '.') {
            fmt++;
            precision = 0;
            while (fmt[1] >= '0' && fmt[1] <= '9')
                precision = precision * 10 + (*++fmt - '0');
        }
        while (fmt[1] == 'l' || fmt[1] == 'z') {
            fmt++;
            len = *fmt == 'z' ? LEN_SIZE : len == LEN_INT ? LEN_LONG : LEN_LLONG;
        }
        if (left)
            pad = ' ';
        switch (*++fmt) {
        case 'd':
        case 'i': {
            int64_t v = len == LEN_LONG    ? va_arg(ap, long)
                        : len == LEN_LLONG ? va_arg(ap, long long)
                        : len == LEN_SIZE  ? (int64_t)va_arg(ap, size_t) /* no signed size_t in C */
                                           : va_arg(ap, int);
            put_number(&o, v < 0 ? 0 - (uint64_t)v : (uint64_t)v, v < 0, 10, false, width, left, pad);
            break;
        }
        case 'u':
        case 'x':
        case 'X': {
            uint64_t v = len == LEN_LONG    ? va_arg(ap, unsigned long)
                         : len == LEN_LLONG ? va_arg(ap, unsigned long long)
                         : len == LEN_SIZE  ? va_arg(ap, size_t)
                                            : va_arg(ap, unsigned);
            put_number(&o, v, false, *fmt == 'u' ? 10 : 16, *fmt == 'X', width, left, pad);
            break;
        }
        case 'p':
            put_run(&o, "0x", 2);
            put_number(&o, (uintptr_t)va_arg(ap, void *), false, 16, false, width, left, pad);
            break;
        case 'c': {
            char c = (char)va_arg(ap, int);
            put_padded(&o, &c, 1, width, left, ' ');
            break;
        }
        case 's': {
            const char *str = va_arg(ap, const char *);
            if (!str)
                str = "(null)";
            size_t n = strlen(str);
            if (precision >= 0 && n > (size_t)precision)
                n = (size_t)precision;
            put_padded(&o, str, n, width, left, ' ');
            break;
        }
        case '%':
            put_run(&o, "%", 1);
            break;
        case '\0':
            fmt--; /* a lone '%' at the end: stop at the terminator */
            break;
        default:
            put_run(&o, fmt - 1, 2);
        }
        fmt++;
    }
    if (size)
        buf[o.len < size ? o.len : size - 1] = '\0';
    return (int)o.len;
}

int rt_snprintf(char *buf, size_t size, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    int n = rt_vsnprintf(buf, size, fmt, ap);
    va_end(ap);
    return n;
}

static rt_spinlock console;

void rt_console_lock(void) { rt_spin_lock(&console); }
void rt_console_unlock(void) { rt_spin_unlock(&console); }

static int vprint(const char *fmt, va_list ap, bool lock)
{
    char buf[512];
    int n = rt_vsnprintf(buf, sizeof(buf), fmt, ap);
    size_t len = n < (int)sizeof(buf) ? (size_t)n : sizeof(buf) - 1;
    if (lock)
        rt_console_lock();
    rt_serial_write(buf, len);
    if (lock)
        rt_console_unlock();
    return n;
}

int rt_printf(const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    int n = vprint(fmt, ap, true);
    va_end(ap);
    return n;
}

void rt_panic_printf(const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    vprint(fmt, ap, false);
    va_end(ap);
}
