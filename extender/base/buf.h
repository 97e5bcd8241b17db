/*
 * buf.h - a growable byte buffer for building replies, log lines and
 * metrics pages.
 *
 * Appends never fail loudly: when memory runs out (or the buffer would pass
 * its cap) the buffer marks itself failed and ignores further appends, so a
 * writer builds the whole text and checks buf_failed() once at the end.
 * The buffer owns its data; buf_free() releases it, buf_steal() hands it over.
 */
#ifndef CE_BUF_H
#define CE_BUF_H

#include <stdarg.h>
#include <stdbool.h>
#include <stddef.h>

struct buf {
    char *data;
    size_t len;
    size_t cap;
    size_t max; /* 0: no cap */
    bool failed;
};

void buf_init(struct buf *b, size_t initial_cap);
void buf_free(struct buf *b);
/* Hands the NUL-terminated data to the caller (free() it); the buffer is empty afterwards. */
char *buf_steal(struct buf *b, size_t *len);
bool buf_failed(const struct buf *b);
void buf_reset(struct buf *b);

void buf_append(struct buf *b, const void *data, size_t n);
void buf_putc(struct buf *b, char c);
void buf_puts(struct buf *b, const char *s);
void buf_printf(struct buf *b, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
void buf_vprintf(struct buf *b, const char *fmt, va_list ap);

/* Appends s[0..n) as a JSON string, quotes included, escaping what RFC 8259
 * requires (quote, backslash, control characters). Well-formed UTF-8 passes
 * through unchanged; any other byte becomes U+FFFD, so the output is always
 * valid UTF-8 JSON. */
void buf_json_string(struct buf *b, const char *s, size_t n);

/* Appends an unsigned / signed integer in decimal. */
void buf_u64(struct buf *b, unsigned long long v);
void buf_i64(struct buf *b, long long v);

/* Appends a double the way Prometheus and JSON both read it ("+Inf", "NaN"
 * only where allowed by the caller). Shortest form that round-trips. */
void buf_double(struct buf *b, double v);

#endif
