/*
 * http_head.c - request head checks; see http_head.h.
 *
 * The head is parsed from its first byte every time more of it arrives
 * (heads are small, and the caller re-peeks the kernel buffer anyway), one
 * line at a time; the last, incomplete line is checked as far as it goes,
 * so that garbage is refused at once rather than at the header timeout.
 */
#include "http_head.h"

#include "../base/buf.h"
#include "protocol.h"

#include <stdarg.h>
#include <stdio.h>
#include <string.h>
#include <strings.h>

/* RFC 9110 section 5.6.2: tchar, the characters of a token. */
static bool is_tchar(unsigned char c)
{
    if ((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9'))
        return true;
    return c && strchr("!#$%&'*+-.^_`|~", c) != NULL;
}

/* A request-target byte: visible ASCII (RFC 9112 section 3.2; anything
 * else is percent-encoded by a conforming client). */
static bool is_target_char(unsigned char c)
{
    return c > 0x20 && c < 0x7f;
}

/* A field-value byte (RFC 9110 section 5.5): visible, SP, HTAB, obs-text. */
static bool is_value_char(unsigned char c)
{
    return c == '\t' || (c >= 0x20 && c != 0x7f);
}

static enum http_head_result reject(struct http_head *h, int status, enum request_error reason,
                                    const char *fmt, ...) __attribute__((format(printf, 4, 5)));

static enum http_head_result reject(struct http_head *h, int status, enum request_error reason,
                                    const char *fmt, ...)
{
    h->status = status;
    h->reason = reason;
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(h->msg, sizeof(h->msg), fmt, ap);
    va_end(ap);
    return HEAD_REJECT;
}

enum metric_verb http_verb_of_path(const char *path, size_t n)
{
    const char *slash = n ? memrchr(path, '/', n) : NULL;
    const char *last = slash ? slash + 1 : path;
    size_t ln = (size_t)(path + n - last);
#define IS(s, len, lit) ((len) == sizeof(lit) - 1 && !memcmp((s), (lit), sizeof(lit) - 1))
    if (IS(last, ln, "filter"))
        return VERB_FILTER;
    if (IS(last, ln, "prioritize"))
        return VERB_PRIORITIZE;
    if (IS(last, ln, "bind"))
        return VERB_BIND;
    if (IS(path, n, "/healthz") || IS(path, n, "/livez"))
        return VERB_HEALTHZ;
    if (IS(path, n, "/readyz"))
        return VERB_READYZ;
    if (IS(path, n, "/metrics"))
        return VERB_METRICS;
    if (IS(path, n, "/explain"))
        return VERB_EXPLAIN;
#undef IS
    return VERB_OTHER;
}

/* The request line p[0..n) (without its CRLF; complete is false when the
 * CRLF has not come yet and n is what there is so far). */
static enum http_head_result request_line(const char *p, size_t n, bool complete,
                                          const struct http_head_limits *lim, struct http_head *h)
{
    size_t i = 0;
    while (i < n && is_tchar((unsigned char)p[i]))
        i++;
    if (i > 32)
        return reject(h, 400, RERR_BAD_REQUEST_LINE, "request method longer than 32 bytes");
    if (i == n)
        return complete ? reject(h, 400, RERR_BAD_REQUEST_LINE, "malformed request line")
                        : HEAD_INCOMPLETE;
    if (!i || p[i] != ' ')
        return reject(h, 400, RERR_BAD_REQUEST_LINE,
                      "malformed request line: the method is not a token followed by one space");
    size_t t0 = ++i;
    while (i < n && is_target_char((unsigned char)p[i]))
        i++;
    size_t tlen = i - t0;
    if (tlen > lim->max_uri_bytes)
        return reject(h, 414, RERR_URI_TOO_LONG,
                      "request target is over the limit of %zu bytes (limit: URL length; raise "
                      "it with --max-uri-bytes)",
                      lim->max_uri_bytes);
    if (tlen) {
        /* RFC 9112 section 3.2: origin-form, absolute-form, or "*". */
        char c = p[t0];
        bool form_ok = c == '/' || c == '*' ||
                       (tlen >= 7 && !strncasecmp(p + t0, "http://", 7)) ||
                       (tlen >= 8 && !strncasecmp(p + t0, "https://", 8));
        if (!form_ok && (i < n || tlen >= 8))
            return reject(h, 400, RERR_BAD_REQUEST_LINE,
                          "malformed request line: the target is not a path");
    }
    if (i == n)
        return complete ? reject(h, 400, RERR_BAD_REQUEST_LINE,
                                 "malformed request line: no HTTP version")
                        : HEAD_INCOMPLETE;
    if (!tlen || p[i] != ' ')
        return reject(h, 400, RERR_BAD_REQUEST_LINE,
                      "malformed request line: bad byte 0x%02x in the target",
                      (unsigned char)p[i]);
    /* The path, for the verb: up to '?' (absolute-form: after the authority). */
    const char *path = p + t0, *tend = p + t0 + tlen;
    if (*path == 'h' || *path == 'H') {
        const char *auth = memchr(path, '/', (size_t)(tend - path));
        auth = auth ? auth + 2 : tend;
        path = auth < tend ? memchr(auth, '/', (size_t)(tend - auth)) : NULL;
        if (!path)
            path = tend;
    }
    const char *q = memchr(path, '?', (size_t)(tend - path));
    h->verb = http_verb_of_path(path, (size_t)((q ? q : tend) - path));
    const char *v = p + i + 1;
    size_t vn = n - i - 1;
    static const char want[] = "HTTP/1.";
    size_t cmp = vn < 7 ? vn : 7;
    if (memcmp(v, want, cmp) != 0) {
        /* HTTP/2.0 and the like are versions we do not speak; anything
         * else is not a version at all. */
        if (vn >= 8 && !memcmp(v, "HTTP/", 5) && v[5] >= '0' && v[5] <= '9' && v[6] == '.')
            return reject(h, 505, RERR_BAD_REQUEST_LINE, "HTTP version %.8s is not supported",
                          v);
        return reject(h, 400, RERR_BAD_REQUEST_LINE, "malformed request line: bad HTTP version");
    }
    if (vn < 8)
        return complete ? reject(h, 400, RERR_BAD_REQUEST_LINE,
                                 "malformed request line: bad HTTP version")
                        : HEAD_INCOMPLETE;
    if (vn > 8 || (v[7] != '0' && v[7] != '1')) {
        if (vn == 8 && v[7] >= '2' && v[7] <= '9')
            return reject(h, 505, RERR_BAD_REQUEST_LINE, "HTTP version %.8s is not supported",
                          v);
        return reject(h, 400, RERR_BAD_REQUEST_LINE, "malformed request line: bad HTTP version");
    }
    h->minor = v[7] - '0';
    return HEAD_OK;
}

/* Trims optional whitespace (SP, HTAB) from both ends of v[0..*n). */
static const char *trim_ows(const char *v, size_t *n)
{
    while (*n && (*v == ' ' || *v == '\t'))
        v++, (*n)--;
    while (*n && (v[*n - 1] == ' ' || v[*n - 1] == '\t'))
        (*n)--;
    return v;
}

static bool name_is(const char *name, size_t n, const char *lit)
{
    return strlen(lit) == n && !strncasecmp(name, lit, n);
}

/* Does the comma-separated token list v[0..n) hold token (any case)? */
static bool list_has(const char *v, size_t n, const char *token)
{
    size_t tl = strlen(token);
    const char *end = v + n;
    while (v < end) {
        const char *comma = memchr(v, ',', (size_t)(end - v));
        size_t len = (size_t)((comma ? comma : end) - v);
        const char *t = trim_ows(v, &len);
        if (len == tl && !strncasecmp(t, token, tl))
            return true;
        v = comma ? comma + 1 : end;
    }
    return false;
}

struct fields {
    size_t hosts, lengths, encodings;
    bool conn_close, conn_keep_alive;
};

/* One complete header field line (without CRLF). */
static enum http_head_result field_line(const char *p, size_t n, const struct http_head_limits *lim,
                                        struct http_head *h, struct fields *f)
{
    if (p[0] == ' ' || p[0] == '\t')
        /* RFC 9112 section 5.2: obs-fold; a server may reject it, and a
         * joined line is how request smuggling hides a header. */
        return reject(h, 400, RERR_BAD_HEADER, "obsolete line folding in a header field");
    size_t i = 0;
    while (i < n && is_tchar((unsigned char)p[i]))
        i++;
    if (!i || i == n || p[i] != ':')
        /* Section 5.1: no whitespace between the name and the colon. */
        return reject(h, 400, RERR_BAD_HEADER, "malformed header field (want Name: value)");
    const char *name = p;
    size_t name_len = i;
    size_t vn = n - i - 1;
    const char *v = p + i + 1;
    for (size_t k = 0; k < vn; k++)
        if (!is_value_char((unsigned char)v[k]))
            return reject(h, 400, RERR_BAD_HEADER, "control byte 0x%02x in header %.*s",
                          (unsigned char)v[k], (int)(name_len > 40 ? 40 : name_len), name);
    v = trim_ows(v, &vn);
    if (name_is(name, name_len, "Host")) {
        f->hosts++;
    } else if (name_is(name, name_len, "Content-Length")) {
        /* Section 6.3: a list or several differing values is unrecoverable. */
        uint64_t x = 0;
        if (!vn)
            return reject(h, 400, RERR_BAD_CONTENT_LENGTH, "empty Content-Length");
        bool overflow = false;
        for (size_t k = 0; k < vn; k++) {
            if (v[k] < '0' || v[k] > '9')
                return reject(h, 400, RERR_BAD_CONTENT_LENGTH,
                              "Content-Length \"%.*s\" is not a number of bytes",
                              (int)(vn > 40 ? 40 : vn), v);
            if (x > (UINT64_MAX - 9) / 10)
                overflow = true;
            else
                x = x * 10 + (uint64_t)(v[k] - '0');
        }
        if (f->lengths && x != h->content_length)
            return reject(h, 400, RERR_BAD_CONTENT_LENGTH, "two different Content-Length values");
        if (overflow || x > lim->max_body_bytes)
            return reject(h, 413, RERR_BODY_TOO_LARGE,
                          "request body of %.*s bytes is over the limit of %zu (limit: body "
                          "bytes; raise it with --max-body-bytes)",
                          (int)(vn > 30 ? 30 : vn), v, lim->max_body_bytes);
        f->lengths++;
        h->has_length = true;
        h->content_length = x;
    } else if (name_is(name, name_len, "Transfer-Encoding")) {
        /* Section 6.1: chunked is the only coding we take; any other (or
         * a second one) would leave the body's end unknown. */
        if (f->encodings++ || vn != 7 || strncasecmp(v, "chunked", 7) != 0)
            return reject(h, 501, RERR_BAD_TRANSFER_ENCODING,
                          "Transfer-Encoding \"%.*s\" is not supported (only chunked)",
                          (int)(vn > 40 ? 40 : vn), v);
        h->chunked = true;
    } else if (name_is(name, name_len, "Connection")) {
        f->conn_close |= list_has(v, vn, "close");
        f->conn_keep_alive |= list_has(v, vn, "keep-alive");
    }
    return HEAD_OK;
}

static enum http_head_result head_fields(struct http_head *h, const struct fields *f);

enum http_head_result http_head_check(const char *p, size_t n, const struct http_head_limits *lim,
                                      struct http_head *out)
{
    struct http_head *h = out;
    memset(h, 0, sizeof(*h));
    h->verb = VERB_OTHER;
    struct fields f = {0};
    size_t pos = 0;
    /* Section 2.2: empty lines before the request line are ignored. */
    for (int k = 0; k < 4 && n - pos >= 2 && p[pos] == '\r' && p[pos + 1] == '\n'; k++)
        pos += 2;
    size_t headers = 0;
    bool first = true;
    for (;;) {
        const char *line = p + pos;
        size_t left = n - pos;
        const char *cr = memchr(line, '\r', left);
        const char *lf = memchr(line, '\n', left);
        if (lf && (!cr || lf < cr))
            /* Section 2.2 lets us refuse a bare LF; refusing keeps us
             * stricter than libmicrohttpd, which takes it. */
            return reject(h, 400, first ? RERR_BAD_REQUEST_LINE : RERR_BAD_HEADER,
                          "line ends in a bare LF (want CRLF)");
        bool complete = cr && (size_t)(cr - line) + 1 < left;
        if (cr && complete && cr[1] != '\n')
            return reject(h, 400, first ? RERR_BAD_REQUEST_LINE : RERR_BAD_HEADER,
                          "bare CR in the request head");
        size_t len = cr ? (size_t)(cr - line) : left;
        enum http_head_result r = first ? request_line(line, len, complete, lim, h) : HEAD_OK;
        if (r == HEAD_REJECT)
            return r;
        if (pos + len + (complete ? 2 : 0) > lim->max_header_bytes)
            return reject(h, 431, RERR_HEADER_TOO_LARGE,
                          "request line and headers are over the limit of %zu (limit: header "
                          "bytes; raise it with --max-header-bytes)",
                          lim->max_header_bytes);
        if (first) {
            if (r != HEAD_OK)
                return r;
            first = false;
        } else if (complete && len == 0) {
            pos += 2;
            break; /* the empty line: the head is complete */
        } else if (complete) {
            if (++headers > lim->max_headers)
                return reject(h, 431, RERR_TOO_MANY_HEADERS,
                              "more than %zu header fields (limit: headers per request; "
                              "raise it with --max-headers)",
                              lim->max_headers);
            r = field_line(line, len, lim, h, &f);
            if (r != HEAD_OK)
                return r;
        } else {
            /* A header line still coming: refuse what can already be seen
             * to be wrong. */
            if (len && (line[0] == ' ' || line[0] == '\t'))
                return reject(h, 400, RERR_BAD_HEADER, "obsolete line folding in a header field");
            size_t i = 0;
            while (i < len && is_tchar((unsigned char)line[i]))
                i++;
            if (i < len && line[i] != ':')
                return reject(h, 400, RERR_BAD_HEADER, "malformed header field (want Name: value)");
            if (headers + 1 > lim->max_headers)
                return reject(h, 431, RERR_TOO_MANY_HEADERS,
                              "more than %zu header fields (limit: headers per request; "
                              "raise it with --max-headers)",
                              lim->max_headers);
        }
        if (!complete)
            return HEAD_INCOMPLETE;
        pos += len + 2;
    }
    h->len = pos;
    return head_fields(h, &f);
}

/* What the fields of a complete head must say together. */
static enum http_head_result head_fields(struct http_head *h, const struct fields *f)
{
    /* Section 3.2: a 1.1 request has exactly one Host; RFC 9110 section
     * 7.2 says one at most in any version. */
    if (h->minor == 1 && f->hosts == 0)
        return reject(h, 400, RERR_MISSING_HOST, "HTTP/1.1 request without a Host header");
    if (f->hosts > 1)
        return reject(h, 400, RERR_MISSING_HOST, "more than one Host header");
    if (h->chunked && f->lengths)
        /* Section 6.3: both is how requests are smuggled; refuse. */
        return reject(h, 400, RERR_BAD_TRANSFER_ENCODING,
                      "both Transfer-Encoding and Content-Length");
    if (h->chunked && h->minor == 0)
        return reject(h, 400, RERR_BAD_TRANSFER_ENCODING, "Transfer-Encoding in an HTTP/1.0 request");
    h->close = h->minor == 0 ? !f->conn_keep_alive || f->conn_close : f->conn_close;
    return HEAD_OK;
}

static const char *reason_phrase(int status)
{
    switch (status) {
    case 400:
        return "Bad Request";
    case 401:
        return "Unauthorized";
    case 404:
        return "Not Found";
    case 405:
        return "Method Not Allowed";
    case 408:
        return "Request Timeout";
    case 411:
        return "Length Required";
    case 413:
        return "Content Too Large";
    case 414:
        return "URI Too Long";
    case 415:
        return "Unsupported Media Type";
    case 431:
        return "Request Header Fields Too Large";
    case 500:
        return "Internal Server Error";
    case 501:
        return "Not Implemented";
    case 503:
        return "Service Unavailable";
    case 505:
        return "HTTP Version Not Supported";
    default:
        return "Error";
    }
}

void http_raw_error(struct buf *b, int status, const char *msg)
{
    struct buf body;
    buf_init(&body, 256);
    protocol_encode_error(&body, msg);
    buf_printf(b,
               "HTTP/1.1 %d %s\r\nContent-Type: application/json\r\nContent-Length: %zu\r\n"
               "Connection: close\r\n%s\r\n",
               status, reason_phrase(status), body.len,
               status == 503 ? "Retry-After: 1\r\n" : "");
    buf_append(b, body.data, body.len);
    if (buf_failed(&body))
        b->failed = true;
    buf_free(&body);
}
