/*
 * log.c - JSON-lines logging; see log.h.
 */
#include "log.h"

#include "buf.h"

#include <stdarg.h>
#include <stdatomic.h>
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

void log_kv(enum log_level l, const char *msg, ...)
{
    if (!log_enabled(l))
        return;
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    struct tm tm;
    gmtime_r(&ts.tv_sec, &tm);
    char tbuf[40];
    strftime(tbuf, sizeof(tbuf), "%Y-%m-%dT%H:%M:%S", &tm);

    struct buf heap;
    buf_init(&heap, 512);
    buf_printf(&heap, "{\"ts\":\"%s.%03ldZ\",\"level\":\"%s\",\"msg\":", tbuf,
               ts.tv_nsec / 1000000, level_names[l]);
    buf_json_string(&heap, msg, strlen(msg));
    va_list ap;
    va_start(ap, msg);
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
    va_end(ap);
    buf_puts(&heap, "}\n");
    if (!buf_failed(&heap)) {
        ssize_t off = 0, n = (ssize_t)heap.len;
        while (off < n) {
            ssize_t w = write(atomic_load(&log_fd), heap.data + off, (size_t)(n - off));
            if (w <= 0)
                break;
            off += w;
        }
    }
    buf_free(&heap);
}
