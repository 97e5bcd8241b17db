/*
 * log.c - JSON-lines logging; see log.h.
 */
#include "log.h"

#include "buf.h"
#include "clock.h"

#include <stdarg.h>
#include <stdio.h>
#include <stdatomic.h>
#include <stdio.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

static atomic_int log_min_level = LOG_INFO;
static atomic_int log_fd = 2;

static const char *const level_names[] = {"debug", "info", "warn", "error"};

bool log_level_parse(const char *s, enum log_level *out)
{
    for (int i = 0; i < 4; i++) {
        if (strcmp(s, level_names[i]) == 0) {
            *out = (enum log_level)i;
            return true;
        }
    }
    return false;
}

const char *log_level_name(enum log_level l)
{
    return (l >= LOG_DEBUG && l <= LOG_ERROR) ? level_names[l] : "info";
}

void log_set_level(enum log_level l)
{
    atomic_store(&log_min_level, (int)l);
}

void log_set_fd(int fd)
{
    atomic_store(&log_fd, fd);
}

bool log_enabled(enum log_level l)
{
    return (int)l >= atomic_load(&log_min_level);
}

/* One line: ts, level, msg, then the key/value pairs of ap, then (when
 * extra_key is set) one more pair. */
static void log_line(enum log_level l, const char *msg, va_list ap, const char *extra_key,
                     const char *extra_value)
{
    int64_t now = clock_wall_ms(); /* a stamp: wall time */
    time_t sec = (time_t)(now / 1000);
    struct tm tm;
    gmtime_r(&sec, &tm);
    char tbuf[40];
    strftime(tbuf, sizeof(tbuf), "%Y-%m-%dT%H:%M:%S", &tm);

    struct buf heap;
    buf_init(&heap, 512);
    buf_printf(&heap, "{\"ts\":\"%s.%03ldZ\",\"level\":\"%s\",\"msg\":", tbuf,
               (long)(now % 1000), level_names[l]);
    buf_json_string(&heap, msg, strlen(msg));
    for (;;) {
        const char *k = va_arg(ap, const char *);
        if (!k)
            break;
        const char *v = va_arg(ap, const char *);
        buf_putc(&heap, ',');
        buf_json_string(&heap, k, strlen(k));
        buf_putc(&heap, ':');
        if (v)
            buf_json_string(&heap, v, strlen(v));
        else
            buf_puts(&heap, "null");
    }
    if (extra_key) {
        buf_putc(&heap, ',');
        buf_json_string(&heap, extra_key, strlen(extra_key));
        buf_putc(&heap, ':');
        buf_json_string(&heap, extra_value, strlen(extra_value));
    }
    buf_puts(&heap, "}\n");
    const char *out = heap.data;
    size_t n = heap.len;
    char small[512];
    if (buf_failed(&heap)) {
        /* Out of memory is when a log line matters most: the message alone
         * (our own literal), from the stack. */
        bool plain = strlen(msg) < 300;
        for (const char *c = msg; plain && *c; c++)
            plain = *c != '"' && *c != '\\' && (unsigned char)*c >= 0x20;
        int w = snprintf(small, sizeof(small),
                         "{\"ts\":\"%s.%03ldZ\",\"level\":\"%s\",\"msg\":\"%s\","
                         "\"log\":\"fields dropped: out of memory\"}\n",
                         tbuf, (long)(now % 1000), level_names[l], plain ? msg : "?");
        out = small;
        n = w > 0 && (size_t)w < sizeof(small) ? (size_t)w : 0;
    }
    for (size_t off = 0; off < n;) {
        ssize_t w = write(atomic_load(&log_fd), out + off, n - off);
        if (w <= 0)
            break;
        off += (size_t)w;
    }
    buf_free(&heap);
}

void log_kv(enum log_level l, const char *msg, ...)
{
    if (!log_enabled(l))
        return;
    va_list ap;
    va_start(ap, msg);
    log_line(l, msg, ap, NULL, NULL);
    va_end(ap);
}

/* Every limit that has been used, for log_limit_flush. */
static pthread_mutex_t limits_mu = PTHREAD_MUTEX_INITIALIZER;
static struct log_limit *limits;

void log_kv_limited(struct log_limit *l, enum log_level level, ...)
{
    if (!log_enabled(level))
        return;
    int64_t second = clock_mono_ms() / 1000;
    unsigned long report = 0;
    bool write_it;
    pthread_mutex_lock(&l->mu);
    if (!l->listed) {
        pthread_mutex_lock(&limits_mu);
        l->next = limits;
        limits = l;
        l->listed = true;
        pthread_mutex_unlock(&limits_mu);
    }
    if (second != l->second) {
        l->second = second;
        l->written = 0;
    }
    write_it = l->written < LOG_LIMIT_PER_SECOND;
    if (write_it) {
        l->written++;
        report = l->suppressed;
        l->suppressed = 0;
    } else {
        l->suppressed++;
    }
    pthread_mutex_unlock(&l->mu);
    if (!write_it)
        return;
    char n[24];
    snprintf(n, sizeof(n), "%lu", report);
    va_list ap;
    va_start(ap, level);
    log_line(level, l->msg, ap, report ? "suppressed" : NULL, n);
    va_end(ap);
}

void log_limit_flush(void)
{
    int64_t second = clock_mono_ms() / 1000;
    pthread_mutex_lock(&limits_mu);
    for (struct log_limit *l = limits; l; l = l->next) {
        pthread_mutex_lock(&l->mu);
        unsigned long n = l->second != second ? l->suppressed : 0;
        if (n)
            l->suppressed = 0;
        pthread_mutex_unlock(&l->mu);
        if (n) {
            char text[24];
            snprintf(text, sizeof(text), "%lu", n);
            log_kv(LOG_WARN, "log lines suppressed", "kind", l->msg, "suppressed", text,
                   "limit_per_second", LOG_LIMIT_PER_SECOND_TEXT, NULL);
        }
    }
    pthread_mutex_unlock(&limits_mu);
}
