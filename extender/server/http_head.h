/*
 * http_head.h - the HTTP/1.1 request head (request line and header fields),
 * checked before libmicrohttpd parses it.
 *
 * libmicrohttpd 0.9.75 answers a malformed head itself, with an HTML body,
 * and in one case (Content-Length: -5) with two status lines; it has no
 * hook to change that. So the connection front (http_gate.c) peeks at each
 * head while it is still in the kernel's receive buffer and runs it through
 * http_head_check: a head that passes is one libmicrohttpd accepts as it is
 * (the check is stricter than libmicrohttpd on every point), and a head
 * that fails gets our own answer. RFC 9112 is the rule throughout; section
 * numbers are cited where a rule is applied.
 *
 * Pure functions over bytes: no I/O, no allocation.
 */
#ifndef CE_HTTP_HEAD_H
#define CE_HTTP_HEAD_H

#include "../base/metrics.h"

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

struct buf;

struct http_head_limits {
    size_t max_header_bytes; /* request line and headers, final CRLF included */
    size_t max_uri_bytes;    /* request target */
    size_t max_headers;      /* header field lines */
    size_t max_body_bytes;   /* Content-Length above: 413 */
};

enum http_head_result {
    HEAD_INCOMPLETE, /* no verdict yet: more bytes needed */
    HEAD_OK,
    HEAD_REJECT,
};

struct http_head {
    size_t len;             /* bytes of the head, empty lines before it included */
    int minor;              /* HTTP/1.<minor>: 0 or 1 */
    bool chunked;           /* Transfer-Encoding: chunked */
    bool has_length;        /* Content-Length given */
    uint64_t content_length;
    bool close;             /* the client asked to close after the reply */
    enum metric_verb verb;  /* from the target, as far as it is known */
    /* HEAD_REJECT: the answer to give. */
    int status;
    enum request_error reason;
    char msg[200];
};

/* Checks the head at the start of p[0..n). HEAD_INCOMPLETE when the bytes
 * so far are a valid beginning; HEAD_REJECT as soon as they cannot be (a
 * bad byte, a limit passed), without waiting for the rest. */
enum http_head_result http_head_check(const char *p, size_t n, const struct http_head_limits *lim,
                                      struct http_head *out);

/* Our verb for a request path: ".../filter", ".../prioritize", ".../bind"
 * under any prefix (the scheduler's urlPrefix is free), "/healthz",
 * "/livez", "/readyz", "/metrics" at the root; VERB_OTHER for anything
 * else. path[0..n) is the path without the query. */
enum metric_verb http_verb_of_path(const char *path, size_t n);

/* Appends a complete HTTP/1.1 response to b: the status line, JSON content
 * type, Content-Length, "Connection: close" and the body {"Error": msg},
 * the shape of every other error reply. For answers given on a raw socket
 * (the request never reached libmicrohttpd, or cannot be answered through
 * it). */
void http_raw_error(struct buf *b, int status, const char *msg);

#endif
