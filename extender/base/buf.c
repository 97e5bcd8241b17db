/*
 * buf.c - growable byte buffer; see buf.h.
 */
#include "buf.h"

#include "json_bytes.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

void buf_init(struct buf *b, size_t initial_cap)
{
    memset(b, 0, sizeof(*b));
    if (initial_cap) {
        b->data = malloc(initial_cap);
        if (!b->data)
            b->failed = true;
        else
            b->cap = initial_cap;
    }
}

void buf_free(struct buf *b)
{
    free(b->data);
    memset(b, 0, sizeof(*b));
}

static bool buf_reserve(struct buf *b, size_t extra);

char *buf_steal(struct buf *b, size_t *len)
{
    /* The NUL is not content, so it must not count against max (appending
     * it with buf_putc() failed a buffer holding exactly max bytes).
     * buf_reserve() always keeps room for it; extra 0 only allocates when
     * nothing was ever appended. */
    if (!buf_reserve(b, 0)) {
        buf_free(b);
        return NULL;
    }
    b->data[b->len] = '\0';
    char *d = b->data;
    if (len)
        *len = b->len;
    memset(b, 0, sizeof(*b));
    return d;
}

bool buf_failed(const struct buf *b)
{
    return b->failed;
}

void buf_reset(struct buf *b)
{
    b->len = 0;
    b->failed = false;
}

static bool buf_reserve(struct buf *b, size_t extra)
{
    if (b->failed)
        return false;
    if (extra > ((size_t)-1) / 2 - b->len) {
        b->failed = true;
        return false;
    }
    size_t need = b->len + extra + 1; /* room for a NUL */
    if (b->max && need > b->max + 1) {
        b->failed = true;
        return false;
    }
    if (need <= b->cap)
        return true;
    size_t cap = b->cap ? b->cap : 256;
    while (cap < need)
        cap *= 2;
    char *d = realloc(b->data, cap);
    if (!d) {
        b->failed = true;
        return false;
    }
    b->data = d;
    b->cap = cap;
    return true;
}

void buf_append(struct buf *b, const void *data, size_t n)
{
    if (n == 0 || !buf_reserve(b, n))
        return;
    memcpy(b->data + b->len, data, n);
    b->len += n;
}

void buf_putc(struct buf *b, char c)
{
    if (!buf_reserve(b, 1))
        return;
    b->data[b->len++] = c;
}

void buf_puts(struct buf *b, const char *s)
{
    buf_append(b, s, strlen(s));
}

void buf_vprintf(struct buf *b, const char *fmt, va_list ap)
{
    va_list ap2;
    va_copy(ap2, ap);
    char small[256];
    int n = vsnprintf(small, sizeof(small), fmt, ap);
    if (n < 0) {
        b->failed = true;
        va_end(ap2);
        return;
    }
    if ((size_t)n < sizeof(small)) {
        buf_append(b, small, (size_t)n);
    } else if (buf_reserve(b, (size_t)n)) {
        vsnprintf(b->data + b->len, (size_t)n + 1, fmt, ap2);
        b->len += (size_t)n;
    }
    va_end(ap2);
}

void buf_printf(struct buf *b, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    buf_vprintf(b, fmt, ap);
    va_end(ap);
}

/* Length (2..4) of the well-formed UTF-8 sequence at s[0..n), or 0 when it
 * is not one (RFC 3629: no overlong forms, no surrogates, nothing above
 * U+10FFFF). s[0] is >= 0x80. */
static size_t utf8_sequence(const unsigned char *s, size_t n)
{
    unsigned char c = s[0];
    size_t len;
    unsigned char lo = 0x80, hi = 0xBF; /* allowed range of the second byte */
    if (c >= 0xC2 && c <= 0xDF)
        len = 2;
    else if (c >= 0xE0 && c <= 0xEF) {
        len = 3;
        if (c == 0xE0)
            lo = 0xA0;
        else if (c == 0xED)
            hi = 0x9F;
    } else if (c >= 0xF0 && c <= 0xF4) {
        len = 4;
        if (c == 0xF0)
            lo = 0x90;
        else if (c == 0xF4)
            hi = 0x8F;
    } else {
        return 0;
    }
    if (n < len || s[1] < lo || s[1] > hi)
        return 0;
    for (size_t i = 2; i < len; i++)
        if ((s[i] & 0xC0) != 0x80)
            return 0;
    return len;
}

void buf_json_string(struct buf *b, const char *s, size_t n)
{
    static const char hex[] = "0123456789abcdef";
    static const char replacement[] = "\xEF\xBF\xBD"; /* U+FFFD */
    const unsigned char *u = (const unsigned char *)s;
    /* Fast path: most strings (node names, reasons) are plain ASCII. */
    size_t plain = json_ascii_plain_prefix(s, n);
    if (plain == n) {
        if (!buf_reserve(b, n + 2))
            return;
        b->data[b->len] = '"';
        memcpy(b->data + b->len + 1, s, n);
        b->data[b->len + 1 + n] = '"';
        b->len += n + 2;
        return;
    }
    /* Reserve exactly what the escaped form takes: reserving the worst case
     * (every byte as \u00XX) failed a capped buffer that had room for it.
     * Bytes that are not well-formed UTF-8 become U+FFFD, as Go's
     * encoding/json does, so every reply and log line is valid UTF-8. */
    size_t need = n + 2;
    for (size_t i = plain; i < n;) {
        unsigned char c = u[i];
        size_t seq = c >= 0x80 ? utf8_sequence(u + i, n - i) : 1;
        if (seq == 0) {
            need += 2; /* one byte becomes three */
            seq = 1;
        } else if (c == '"' || c == '\\' || c == '\n' || c == '\r' || c == '\t') {
            need += 1;
        } else if (c < 0x20) {
            need += 5;
        }
        i += seq;
    }
    if (!buf_reserve(b, need))
        return;
    char *o = b->data + b->len;
    *o++ = '"';
    memcpy(o, s, plain);
    o += plain;
    for (size_t i = plain; i < n;) {
        unsigned char c = u[i];
        if (c >= 0x80) {
            size_t seq = utf8_sequence(u + i, n - i);
            if (seq) {
                memcpy(o, s + i, seq);
                o += seq;
                i += seq;
            } else {
                memcpy(o, replacement, 3);
                o += 3;
                i++;
            }
            continue;
        }
        i++;
        if (c >= 0x20 && c != '"' && c != '\\') {
            *o++ = (char)c;
            continue;
        }
        *o++ = '\\';
        switch (c) {
        case '"':
            *o++ = '"';
            break;
        case '\\':
            *o++ = '\\';
            break;
        case '\n':
            *o++ = 'n';
            break;
        case '\r':
            *o++ = 'r';
            break;
        case '\t':
            *o++ = 't';
            break;
        default:
            *o++ = 'u';
            *o++ = '0';
            *o++ = '0';
            *o++ = hex[c >> 4];
            *o++ = hex[c & 15];
        }
    }
    *o++ = '"';
    b->len = (size_t)(o - b->data);
}

void buf_u64(struct buf *b, unsigned long long v)
{
    char tmp[24];
    size_t i = sizeof(tmp);
    do {
        tmp[--i] = (char)('0' + v % 10);
        v /= 10;
    } while (v);
    buf_append(b, tmp + i, sizeof(tmp) - i);
}

void buf_i64(struct buf *b, long long v)
{
    if (v < 0) {
        buf_putc(b, '-');
        buf_u64(b, (unsigned long long)(-(v + 1)) + 1);
    } else {
        buf_u64(b, (unsigned long long)v);
    }
}

void buf_double(struct buf *b, double v)
{
    if (isnan(v)) {
        buf_puts(b, "NaN");
        return;
    }
    if (isinf(v)) {
        buf_puts(b, v > 0 ? "+Inf" : "-Inf");
        return;
    }
    /* Range first: converting a double outside long long's range (1e300,
     * say) is undefined behaviour, so the cast must not be evaluated. */
    if (fabs(v) < 1e15 && v == (double)(long long)v) {
        buf_i64(b, (long long)v);
        return;
    }
    char tmp[32];
    /* %.17g always round-trips; try shorter first for readable output. */
    for (int prec = 6; prec <= 17; prec++) {
        snprintf(tmp, sizeof(tmp), "%.*g", prec, v);
        if (strtod(tmp, NULL) == v)
            break;
    }
    buf_puts(b, tmp);
}
