/*
 * fuzz_http_head.c - the request head checks (http_head_check) the gate
 * runs on every head before libmicrohttpd sees it, and the raw error
 * responses (http_raw_error) it answers with.
 *
 * Invariants (http_head.h):
 * - a verdict is final: once a prefix of the input is refused, every
 *   longer prefix (and the whole input) is refused too, so a head cannot
 *   be refused while it arrives and then accepted;
 * - an accepted head has a length within the input, the same verdict and
 *   length when checked alone, and every shorter prefix of it is still
 *   "incomplete" (never refused on the way);
 * - the limits hold: an accepted head is within max_header_bytes, at most
 *   max_headers lines, and its Content-Length within max_body_bytes;
 * - a refusal has a status of 400-505 and a reason and message;
 * - the answer for it is one well-formed response whose body is the
 *   JSON {"Error": msg}.
 */
#include "fuzz_util.h"

#include "base/buf.h"
#include "server/http_head.h"

static const struct http_head_limits fz_http_head_lim = {
    .max_header_bytes = 2048, .max_uri_bytes = 256, .max_headers = 16, .max_body_bytes = 100000};

static enum http_head_result fz_http_head_check(const uint8_t *data, size_t n,
                                                struct http_head *h)
{
    char *p = fuzz_copy_exact(data, n);
    enum http_head_result r = http_head_check(p, n, &fz_http_head_lim, h);
    free(p);
    return r;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (size > 8192)
        return 0;
    struct http_head h, part;
    enum http_head_result r = fz_http_head_check(data, size, &h);
    if (r == HEAD_REJECT) {
        FUZZ_CHECK(h.status >= 400 && h.status <= 505);
        FUZZ_CHECK(h.reason < RERR_COUNT && h.msg[0] != '\0');
        struct buf b;
        buf_init(&b, 256);
        http_raw_error(&b, h.status, h.msg);
        FUZZ_CHECK(!buf_failed(&b));
        buf_putc(&b, '\0');
        FUZZ_CHECK(strncmp(b.data, "HTTP/1.1 ", 9) == 0);
        const char *body = strstr(b.data, "\r\n\r\n");
        FUZZ_CHECK(body && strncmp(body + 4, "{\"Error\":\"", 10) == 0);
        FUZZ_CHECK(b.data[b.len - 2] == '}');
        buf_free(&b);
    }
    if (r == HEAD_OK) {
        FUZZ_CHECK(h.len > 0 && h.len <= size && h.len <= fz_http_head_lim.max_header_bytes);
        FUZZ_CHECK(!h.has_length || h.content_length <= fz_http_head_lim.max_body_bytes);
        FUZZ_CHECK(h.minor == 0 || h.minor == 1);
        FUZZ_CHECK(fz_http_head_check(data, h.len, &part) == HEAD_OK && part.len == h.len);
        size_t lines = 0;
        for (size_t i = 0; i + 1 < h.len; i++)
            lines += data[i] == '\r' && data[i + 1] == '\n';
        FUZZ_CHECK(lines <= fz_http_head_lim.max_headers + 6); /* + request line, end, leading CRLFs */
    }
    /* Prefixes: at a few cut points (every one for small inputs). */
    size_t end = r == HEAD_OK ? h.len : size;
    size_t step = end > 256 ? end / 64 : 1;
    for (size_t k = 0; k < end; k += step) {
        enum http_head_result pr = fz_http_head_check(data, k, &part);
        if (r == HEAD_OK)
            FUZZ_CHECK(pr == HEAD_INCOMPLETE);
        if (pr == HEAD_REJECT)
            FUZZ_CHECK(r == HEAD_REJECT);
    }
    return 0;
}
