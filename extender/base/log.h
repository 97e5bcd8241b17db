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

#endif
