/*
 * log.h - structured logs: one JSON object per line on stderr.
 *
 *     {"ts":"2026-11-25T03:50:25.123Z","level":"warn","msg":"node rejected",
 *      "pod":"default/web-1","node":"ip-10-0-1-11.ec2.internal","reason":"..."}
 *
 * Fields come as key/value string pairs ending with NULL. Each line is
 * written with one write(2), so lines from different threads never mix.
 */
#ifndef CE_LOG_H
#define CE_LOG_H

#include <stdbool.h>

enum log_level { LOG_DEBUG = 0, LOG_INFO, LOG_WARN, LOG_ERROR };

/* Parses "debug", "info", "warn" or "error" (exactly: --help documents these
 * four); false for anything else. */
bool log_level_parse(const char *s, enum log_level *out);
const char *log_level_name(enum log_level l);

void log_set_level(enum log_level l);
void log_set_fd(int fd); /* default 2 (stderr); tests redirect it */
bool log_enabled(enum log_level l);

/* log_kv(LOG_INFO, "pricing table loaded", "file", path, "types", "412", NULL) */
void log_kv(enum log_level l, const char *msg, ...) __attribute__((sentinel));

/* A rate limit for one kind of line that clients cause (a rejected
 * request, a client that hung up): a flood of clients must not flood the
 * log. At most LOG_LIMIT_PER_SECOND lines of a kind are written a second;
 * the rest are counted, and the count is reported once: in the "suppressed"
 * field of the next line of that kind written, or, when none comes, in a
 * "log lines suppressed" summary line that log_limit_flush writes. */
#include <pthread.h>
#include <stdint.h>

#define LOG_LIMIT_PER_SECOND 10
#define LOG_LIMIT_PER_SECOND_TEXT "10"

struct log_limit {
    const char *msg; /* the lines' msg */
    pthread_mutex_t mu;
    int64_t second; /* of the current window, monotonic */
    unsigned written;
    unsigned long suppressed;
    struct log_limit *next; /* in the list log_limit_flush walks */
    bool listed;
};
#define LOG_LIMIT_INIT(m) {.msg = (m), .mu = PTHREAD_MUTEX_INITIALIZER}

/* log_kv with l's msg, unless it is one line too many this second. */
void log_kv_limited(struct log_limit *l, enum log_level level, ...) __attribute__((sentinel));

/* Writes the summary line of every kind whose suppressed lines have not
 * been reported and whose second is over. Call it about once a second. */
void log_limit_flush(void);

#endif
